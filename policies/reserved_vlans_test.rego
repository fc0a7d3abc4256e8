package lintas.builtin.reserved_vlans_test

import data.lintas.builtin.reserved_vlans

reserved := [{"first": 1002, "last": 1005, "reason": "legacy"}]

test_tenant_vlans_pass if {
	count(reserved_vlans.deny) == 0 with input as {"networks": {"web": {"vlan": 10}}, "vrfs": {"A": {"l3_vlan": 3900}}}
		with data.lintas.config.vlans.reserved as reserved
}

test_vlan_1_is_always_denied if {
	some d in reserved_vlans.deny with input as {"networks": {"web": {"vlan": 1}}}
		with data.lintas.config.vlans.reserved as []
	d.object == {"kind": "network", "name": "web"}
	contains(d.msg, "the default VLAN")
}

test_reserved_range_denied_for_networks_and_vrfs if {
	count(reserved_vlans.deny) == 2 with input as {"networks": {"web": {"vlan": 1002}}, "vrfs": {"A": {"l3_vlan": 1005}}}
		with data.lintas.config.vlans.reserved as reserved
}

test_range_edges if {
	count(reserved_vlans.deny) == 0 with input as {"networks": {"a": {"vlan": 1001}, "b": {"vlan": 1006}}}
		with data.lintas.config.vlans.reserved as reserved
}

test_bad_range_denied if {
	count(reserved_vlans.deny) == 1 with input as {} with data.lintas.config.vlans.reserved as [{"first": "1002"}]
}
