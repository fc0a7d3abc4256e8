# Lintas defines the libvirt domains of kvm hosts from this repo, so every instance that
# should run on one names the image it boots. (On openstack hosts nova owns the image.)
package lintas.local.kvm_images

deny contains {"msg": msg, "object": {"kind": "instance", "name": name}} if {
	some name, inst in input.instances
	inst.state == "running"
	input.hosts[inst.host].kind == "kvm"
	object.get(inst, "image", null) == null
	msg := sprintf("instance %s runs on kvm host %s but names no image", [name, inst.host])
}
