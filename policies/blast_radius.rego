# Blast radius: a change that touches any spine, more than N % of the leaves, or that
# removes a target from the model needs an operator's approval before it is deployed.
#
# data.lintas.config.blast_radius:
#   max_leaf_percent  (number, default 25): approval above this share of all leaves
#   approve_removals  (bool, default true)
#
# The change (input.change) comes from the render stage's plan: targets that are new,
# changed or removed. Without a plan (input.change.known == false) nothing is judged,
# and a warning says so.
package lintas.builtin.blast_radius

default max_leaf_percent := 25

max_leaf_percent := data.lintas.config.blast_radius.max_leaf_percent

default approve_removals := true

approve_removals := data.lintas.config.blast_radius.approve_removals

leaves := {name | some name, d in input.devices; d.role == "leaf"}

touched_leaves := {t.name | some t in input.change.targets; t.role == "leaf"}

touched_spines := {t.name | some t in input.change.targets; t.role == "spine"}

removed := {t.name | some t in input.change.targets; t.status == "removed"}

require_approval contains msg if {
	is_number(max_leaf_percent)
	count(leaves) > 0
	count(touched_leaves) * 100 > max_leaf_percent * count(leaves)
	msg := sprintf(
		"blast radius: the change touches %d of %d leaves, more than %v%% of the fabric",
		[count(touched_leaves), count(leaves), max_leaf_percent],
	)
}

require_approval contains msg if {
	count(touched_spines) > 0
	msg := sprintf(
		"blast radius: the change touches spine(s) %s, which every leaf depends on",
		[concat(", ", sort(touched_spines))],
	)
}

require_approval contains msg if {
	approve_removals == true
	count(removed) > 0
	msg := sprintf(
		"blast radius: the change removes %s from the model; their configuration will be withdrawn",
		[concat(", ", sort(removed))],
	)
}

warn contains "blast radius not checked: the change is unknown (no plan from the render stage)" if {
	input.change.known == false
}

deny contains msg if {
	not is_number(max_leaf_percent)
	msg := "policy data lintas.config.blast_radius.max_leaf_percent must be a number"
}
