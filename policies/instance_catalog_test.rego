package lintas.builtin.instance_catalog_test

import data.lintas.builtin.instance_catalog

flavors := {"m1.small": {"vcpus": 1, "ram_mib": 2048}, "m1.huge": {"vcpus": 64, "ram_mib": 262144}}

vm(flavor) := {"flavor": flavor, "owner": "team-a", "project": "proj-a"}

test_repo_catalog_by_default if {
	count(instance_catalog.deny) == 0 with input as {"flavors": flavors, "instances": {"a": vm("m1.small")}}
}

test_unknown_flavor_denied if {
	some d in instance_catalog.deny with input as {"flavors": flavors, "instances": {"a": vm("x1.rogue")}}
	d.object == {"kind": "instance", "name": "a"}
}

test_approved_list_from_data if {
	count(instance_catalog.deny) == 1 with input as {"flavors": flavors, "instances": {"a": vm("m1.huge")}}
		with data.lintas.config.flavors.approved as ["m1.small"]
}

test_catalog_spec_must_match if {
	count(instance_catalog.deny) == 1 with input as {"flavors": flavors, "instances": {"a": vm("m1.small")}}
		with data.lintas.config.flavors.approved as {"m1.small": {"vcpus": 2}}
}

test_owner_and_project_required if {
	count(instance_catalog.deny) == 2 with input as {"flavors": flavors, "instances": {"a": {"flavor": "m1.small", "owner": " "}}}
}

test_bad_catalog_denied if {
	count(instance_catalog.deny) == 1 with input as {} with data.lintas.config.flavors.approved as "m1.small"
}
