# Freeze windows: no change is deployed inside a configured freeze window, unless it is
# labelled an emergency; an emergency change inside a window needs an approval.
#
# data.lintas.config.freeze:
#   windows          list of {"name", "start", "end", "reason"?}; start/end RFC 3339,
#                    the window is [start, end)
#   emergency_label  (default "emergency")
#
# The clock is input.meta.evaluated_at (set by the policy stage); labels come from the
# commit trailer "Lintas-Labels: emergency, change-1234" (input.meta.labels).
package lintas.builtin.freeze_window

default windows := []

windows := data.lintas.config.freeze.windows

default emergency_label := "emergency"

emergency_label := data.lintas.config.freeze.emergency_label

default labels := []

labels := input.meta.labels

emergency if emergency_label in labels

now := time.parse_rfc3339_ns(input.meta.evaluated_at)

valid(w) if {
	is_string(w.start)
	is_string(w.end)
}

name(w) := w.name if is_string(w.name)

name(w) := "unnamed" if not is_string(w.name)

active contains w if {
	some w in windows
	valid(w)
	time.parse_rfc3339_ns(w.start) <= now
	now < time.parse_rfc3339_ns(w.end)
}

deny contains msg if {
	some w in active
	not emergency
	msg := sprintf(
		"change inside freeze window '%s' (%s to %s): only emergency changes may be deployed; add the commit trailer 'Lintas-Labels: %s' to ask for one",
		[name(w), w.start, w.end, emergency_label],
	)
}

require_approval contains msg if {
	some w in active
	emergency
	msg := sprintf("emergency change inside freeze window '%s' (%s to %s)", [name(w), w.start, w.end])
}

deny contains msg if {
	count(windows) > 0
	not now
	msg := "freeze windows are configured but the change has no evaluation time (input.meta.evaluated_at): it cannot be shown to be outside them"
}

deny contains msg if {
	some i, w in windows
	not valid(w)
	msg := sprintf("policy data lintas.config.freeze.windows[%d] needs RFC 3339 strings 'start' and 'end'", [i])
}
