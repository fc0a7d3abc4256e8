# Instances come only from the approved flavor catalog, and each names its owner and project.
#
# data.lintas.config.flavors.approved:
#   null (default)     the catalog is the repo's own hosts/flavors.yaml
#   [name, ...]        only these flavors
#   {name: spec, ...}  only these flavors, and the repo's definition of each must match
#                      the fields given in spec (vcpus, ram_mib, disk_gb, ...)
package lintas.builtin.instance_catalog

default approved := null

approved := data.lintas.config.flavors.approved

# (the comprehensions sit in the bodies: regorus 0.9.1 cannot schedule a comprehension
# in the head of a conditional rule)
catalog := names if {
	approved == null
	names := {name | some name, _ in input.flavors}
}

catalog := names if {
	is_array(approved)
	names := {name | some name in approved}
}

catalog := names if {
	is_object(approved)
	names := {name | some name, _ in approved}
}

instance(name) := {"kind": "instance", "name": name}

flavor_of(inst) := inst.flavor if is_string(inst.flavor)

flavor_of(inst) := "(none)" if not is_string(inst.flavor)

filled(value) if {
	is_string(value)
	trim_space(value) != ""
}

deny contains {"msg": msg, "object": instance(name)} if {
	some name, inst in input.instances
	not flavor_of(inst) in catalog
	msg := sprintf("instance %s uses flavor %s, which is not in the approved flavor catalog", [name, flavor_of(inst)])
}

deny contains {"msg": msg, "object": instance(name)} if {
	some name, inst in input.instances
	some field in ["owner", "project"]
	not filled(object.get(inst, field, null))
	msg := sprintf("instance %s has no %s: every instance names its owner and its project", [name, field])
}

deny contains {"msg": msg, "object": {"kind": "flavor", "name": name}} if {
	is_object(approved)
	some name, spec in approved
	is_object(spec)
	some field, want in spec
	have := object.get(input.flavors, [name, field], null)
	have != null
	have != want
	msg := sprintf("flavor %s: %s is %v in the repo but %v in the approved catalog", [name, field, have, want])
}

deny contains msg if {
	approved != null
	not is_array(approved)
	not is_object(approved)
	msg := "policy data lintas.config.flavors.approved must be null, a list of names or an object"
}
