package lintas.builtin.mgmt_acl_test

import data.lintas.builtin.mgmt_acl

acl(source, permit) := {"source": source, "permit": permit}

fabric := {"name": "dc1", "management": {"subnet": "10.255.0.0/24", "vrf": "mgmt"}}

test_derived_acl_passes if {
	count(mgmt_acl.deny) == 0 with input as {"fabric": fabric, "devices": {"leaf-01": {"mgmt_acl": acl("derived", ["10.255.0.0/24"])}}}
}

test_missing_acl_denied if {
	some d in mgmt_acl.deny with input as {"fabric": fabric, "devices": {"leaf-01": {"name": "leaf-01"}}}
	d.object == {"kind": "device", "name": "leaf-01"}
}

test_empty_acl_denied if {
	count(mgmt_acl.deny) == 1 with input as {"fabric": fabric, "devices": {"leaf-01": {"mgmt_acl": acl("device", [])}}}
}

test_any_source_denied if {
	count(mgmt_acl.deny) == 1 with input as {"fabric": fabric, "devices": {"s": {"mgmt_acl": acl("device", ["0.0.0.0/0"])}}}
	count(mgmt_acl.deny) == 1 with input as {"fabric": fabric, "devices": {"s": {"mgmt_acl": acl("device", ["::/0"])}}}
}

test_wide_prefix_threshold_from_data if {
	count(mgmt_acl.deny) == 0 with input as {"fabric": fabric, "devices": {"s": {"mgmt_acl": acl("device", ["10.0.0.0/8"])}}}
	count(mgmt_acl.deny) == 1 with input as {"fabric": fabric, "devices": {"s": {"mgmt_acl": acl("device", ["10.0.0.0/8"])}}}
		with data.lintas.config.management_acl.min_prefix_length as {"ipv4": 16, "ipv6": 48}
}

test_invalid_prefix_denied if {
	count(mgmt_acl.deny) == 1 with input as {"fabric": fabric, "devices": {"s": {"mgmt_acl": acl("device", ["mgmt-net"])}}}
}

test_require_explicit if {
	count(mgmt_acl.deny) == 1 with input as {"fabric": fabric, "devices": {"s": {"mgmt_acl": acl("derived", ["10.255.0.0/24"])}}}
		with data.lintas.config.management_acl.require_explicit as true
}

test_default_vrf_denied if {
	count(mgmt_acl.deny) == 1 with input as {"fabric": {"name": "dc1", "management": {"vrf": "default"}}, "devices": {}}
}
