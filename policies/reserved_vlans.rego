# Tenants do not use VLAN 1 or a reserved VLAN range.
#
# VLAN 1 is the default (native, untagged) VLAN of every switch port and is never given
# to a tenant network or a VRF's L3 VLAN. Further reserved ranges come from
# data.lintas.config.vlans.reserved: a list of {"first", "last", "reason"}.
package lintas.builtin.reserved_vlans

default reserved := []

reserved := data.lintas.config.vlans.reserved

ranges := array.concat([{"first": 1, "last": 1, "reason": "the default VLAN"}], [r | some r in reserved; valid(r)])

valid(r) if {
	is_number(r.first)
	is_number(r.last)
}

reason(r) := r.reason if is_string(r.reason)

reason(r) := "reserved" if not is_string(r.reason)

hit(vlan) := {reason(r) | some r in ranges; r.first <= vlan; vlan <= r.last}

deny contains {"msg": msg, "object": {"kind": "network", "name": name}} if {
	some name, net in input.networks
	some why in hit(net.vlan)
	msg := sprintf("network %s uses VLAN %d, which tenants must not use (%s)", [name, net.vlan, why])
}

deny contains {"msg": msg, "object": {"kind": "vrf", "name": name}} if {
	some name, vrf in input.vrfs
	some why in hit(vrf.l3_vlan)
	msg := sprintf("VRF %s uses VLAN %d for its L3 VNI, which tenants must not use (%s)", [name, vrf.l3_vlan, why])
}

deny contains msg if {
	some i, r in reserved
	not valid(r)
	msg := sprintf("policy data lintas.config.vlans.reserved[%d] needs numbers 'first' and 'last'", [i])
}
