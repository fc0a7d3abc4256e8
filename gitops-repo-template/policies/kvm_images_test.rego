package lintas.local.kvm_images_test

import data.lintas.local.kvm_images

hosts := {"kvm-1": {"kind": "kvm"}, "osc-1": {"kind": "openstack"}}

test_running_kvm_instance_without_image_is_denied if {
	count(kvm_images.deny) == 1 with input as {"hosts": hosts, "instances": {"vm": {"host": "kvm-1", "state": "running", "image": null}}}
}

test_image_or_stopped_or_nova_owned_passes if {
	count(kvm_images.deny) == 0 with input as {"hosts": hosts, "instances": {
		"a": {"host": "kvm-1", "state": "running", "image": "cirros-0.6.2"},
		"b": {"host": "kvm-1", "state": "stopped", "image": null},
		"c": {"host": "osc-1", "state": "running", "image": null},
	}}
}
