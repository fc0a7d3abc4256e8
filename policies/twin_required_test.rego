package lintas.builtin.twin_required_test

import data.lintas.builtin.twin_required

devices := {
	"spine-01": {"role": "spine"}, "spine-02": {"role": "spine"},
	"leaf-01": {"role": "leaf"}, "leaf-02": {"role": "leaf"},
}

change(targets) := {"devices": devices, "change": {"known": true, "targets": targets}}

target(name, role, status) := {"name": name, "status": status, "kind": "device", "role": role}

test_a_leaf_change_needs_no_twin if {
	count(twin_required.require_twin) == 0 with input as change([target("leaf-01", "leaf", "changed")])
}

test_a_spine_change_requires_a_twin if {
	got := twin_required.require_twin with input as change([
		target("leaf-01", "leaf", "changed"),
		target("spine-02", "spine", "changed"),
		target("spine-01", "spine", "new"),
	])
	got == {"twin required: the change touches spine(s) spine-01, spine-02, which every leaf depends on"}
}

test_a_removed_spine_requires_a_twin if {
	got := twin_required.require_twin with input as change([
		target("leaf-01", "leaf", "changed"),
		target("spine-02", "spine", "removed"),
	])
	got == {"twin required: the change touches spine(s) spine-02, which every leaf depends on"}
}

test_operators_can_turn_it_off if {
	count(twin_required.require_twin) == 0 with input as change([target("spine-01", "spine", "changed")])
		with data.lintas.config.twin.require_for_spines as false
}

test_an_unknown_change_is_not_judged if {
	count(twin_required.require_twin) == 0 with input as {"devices": devices, "change": {"known": false, "targets": []}}
}

test_bad_setting_denied if {
	count(twin_required.deny) == 1 with input as change([]) with data.lintas.config.twin.require_for_spines as "yes"
}
