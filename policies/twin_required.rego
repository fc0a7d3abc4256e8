# Twin required: a change that touches a spine must be proven on a throwaway twin (the `twin`
# stage, issue 18) before it reaches production. Every leaf depends on the spines: a spine that
# goes wrong takes the whole fabric's EVPN with it, so the twin may not be skipped for it (the
# twin stage fails when it cannot build one, instead of going on unproven).
#
# data.lintas.config.twin:
#   require_for_spines  (bool, default true)
#
# The change (input.change) comes from the render stage's plan. Without a plan
# (input.change.known == false) nothing is judged. A removed spine counts: removing it changes
# every leaf (its role comes from the model before the change). The decision `require_twin` is
# read by the twin stage and the deploy stage through the policy stage's summary (deploy commits
# only a proven change); a pipeline without a twin stage gets a warning on the run instead
# (nothing to prove the change on).
package lintas.builtin.twin_required

default require_for_spines := true

require_for_spines := data.lintas.config.twin.require_for_spines

# a removed spine counts (its role from the model before the change): removing it changes every leaf
touched_spines := {t.name | some t in input.change.targets; t.role == "spine"}

require_twin contains msg if {
	require_for_spines == true
	count(touched_spines) > 0
	msg := sprintf(
		"twin required: the change touches spine(s) %s, which every leaf depends on",
		[concat(", ", sort(touched_spines))],
	)
}

deny contains msg if {
	not is_boolean(require_for_spines)
	msg := "policy data lintas.config.twin.require_for_spines must be true or false"
}
