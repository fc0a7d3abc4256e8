package lintas.builtin.blast_radius_test

import data.lintas.builtin.blast_radius

devices := {
	"spine-01": {"role": "spine"}, "spine-02": {"role": "spine"},
	"leaf-01": {"role": "leaf"}, "leaf-02": {"role": "leaf"},
	"leaf-03": {"role": "leaf"}, "leaf-04": {"role": "leaf"},
}

change(targets) := {"devices": devices, "change": {"known": true, "targets": targets}}

leaf(name) := {"name": name, "status": "changed", "kind": "device", "role": "leaf"}

test_one_leaf_of_four_is_fine if {
	count(blast_radius.require_approval) == 0 with input as change([leaf("leaf-01")])
}

test_two_leaves_of_four_need_approval if {
	some msg in blast_radius.require_approval with input as change([leaf("leaf-01"), leaf("leaf-02")])
	contains(msg, "2 of 4 leaves")
}

test_threshold_from_data if {
	count(blast_radius.require_approval) == 0 with input as change([leaf("leaf-01"), leaf("leaf-02")])
		with data.lintas.config.blast_radius.max_leaf_percent as 50
}

test_any_spine_needs_approval if {
	approvals := blast_radius.require_approval with input as change([
		{"name": "spine-02", "status": "changed", "role": "spine"},
		{"name": "spine-01", "status": "changed", "role": "spine"},
	])
	approvals == {"blast radius: the change touches spine(s) spine-01, spine-02, which every leaf depends on"}
}

test_removal_needs_approval if {
	some msg in blast_radius.require_approval with input as change([{"name": "old-host", "status": "removed", "role": null}])
	contains(msg, "removes old-host")
}

test_unknown_change_warns if {
	count(blast_radius.warn) == 1 with input as {"devices": devices, "change": {"known": false, "targets": []}}
}

test_bad_threshold_denied if {
	count(blast_radius.deny) == 1 with input as change([]) with data.lintas.config.blast_radius.max_leaf_percent as "25"
}
