package lintas.builtin.freeze_window_test

import data.lintas.builtin.freeze_window

xmas := {"name": "year-end", "start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z"}

at(when, labels) := {"meta": {"evaluated_at": when, "labels": labels}}

test_outside_window_passes if {
	count(freeze_window.deny) == 0 with input as at("2026-12-19T23:59:59Z", [])
		with data.lintas.config.freeze.windows as [xmas]
}

test_end_is_exclusive if {
	count(freeze_window.deny) == 0 with input as at("2027-01-04T00:00:00Z", [])
		with data.lintas.config.freeze.windows as [xmas]
}

test_inside_window_denied if {
	some msg in freeze_window.deny with input as at("2026-12-24T10:00:00+01:00", ["change-1"])
		with data.lintas.config.freeze.windows as [xmas]
	contains(msg, "year-end")
}

test_emergency_needs_approval_instead if {
	count(freeze_window.deny) == 0 with input as at("2026-12-24T10:00:00Z", ["emergency"])
		with data.lintas.config.freeze.windows as [xmas]
	count(freeze_window.require_approval) == 1 with input as at("2026-12-24T10:00:00Z", ["emergency"])
		with data.lintas.config.freeze.windows as [xmas]
}

test_custom_emergency_label if {
	count(freeze_window.deny) == 0 with input as at("2026-12-24T10:00:00Z", ["p1-incident"])
		with data.lintas.config.freeze as {"windows": [xmas], "emergency_label": "p1-incident"}
}

test_no_clock_fails_closed if {
	count(freeze_window.deny) == 1 with input as {"meta": {"labels": []}}
		with data.lintas.config.freeze.windows as [xmas]
}

test_malformed_window_denied if {
	count(freeze_window.deny) == 1 with input as at("2026-12-24T10:00:00Z", [])
		with data.lintas.config.freeze.windows as [{"name": "broken", "start": "2026-12-20T00:00:00Z"}]
}

test_no_windows_no_opinion if {
	count(freeze_window.deny) == 0 with input as {}
}
