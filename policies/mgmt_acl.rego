# A management-plane ACL on every device.
#
# Each switch limits management access (SSH, its API) to listed source prefixes, and its
# management interface sits in a dedicated VRF. The input gives every device its
# effective ACL, input.devices[d].mgmt_acl = {"source", "permit": [prefixes]}, where
# source is "device" (a per-device mgmt_acl in the model), "fabric.management.acl", or
# "derived" (neither is written: the management subnet only).
#
# data.lintas.config.management_acl:
#   require_explicit   (bool, default false): deny derived ACLs
#   min_prefix_length  {"ipv4": 8, "ipv6": 32}: no permit entry may be wider than this
package lintas.builtin.mgmt_acl

default require_explicit := false

require_explicit := data.lintas.config.management_acl.require_explicit

default min_v4 := 8

min_v4 := data.lintas.config.management_acl.min_prefix_length.ipv4

default min_v6 := 32

min_v6 := data.lintas.config.management_acl.min_prefix_length.ipv6

device(name) := {"kind": "device", "name": name}

permits(d) := d.mgmt_acl.permit if is_array(d.mgmt_acl.permit)

has_acl(d) if count(permits(d)) > 0

length(prefix) := to_number(split(prefix, "/")[1])

too_wide(prefix) if {
	contains(prefix, ":")
	length(prefix) < min_v6
}

too_wide(prefix) if {
	not contains(prefix, ":")
	length(prefix) < min_v4
}

deny contains {"msg": msg, "object": device(name)} if {
	some name, d in input.devices
	not has_acl(d)
	msg := sprintf("device %s has no management-plane ACL: management access must be limited to the management network", [name])
}

deny contains {"msg": msg, "object": device(name)} if {
	some name, d in input.devices
	some prefix in permits(d)
	not net.cidr_is_valid(prefix)
	msg := sprintf("device %s: management ACL entry %v is not a prefix", [name, prefix])
}

deny contains {"msg": msg, "object": device(name)} if {
	some name, d in input.devices
	some prefix in permits(d)
	net.cidr_is_valid(prefix)
	too_wide(prefix)
	msg := sprintf("device %s: management ACL permits %s, which is wider than /%d (IPv4) or /%d (IPv6)", [name, prefix, min_v4, min_v6])
}

deny contains {"msg": msg, "object": device(name)} if {
	require_explicit == true
	some name, d in input.devices
	d.mgmt_acl.source == "derived"
	msg := sprintf("device %s: no explicit management ACL (fabric.management.acl or the device's mgmt_acl)", [name])
}

deny contains {"msg": msg, "object": {"kind": "fabric", "name": input.fabric.name}} if {
	input.fabric.management.vrf == "default"
	msg := "the management network is in the default VRF: put it in a VRF of its own (fabric.management.vrf)"
}
