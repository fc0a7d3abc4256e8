# The MTU on the host side matches the fabric.
#
# For every compute host: the uplink MTU equals the MTU of the fabric network its tunnel
# endpoints live on, and is not above the fabric MTU; every network trunked on the uplink
# fits the uplink; the instance (overlay) MTU plus the encapsulation overhead fits the
# uplink, and a warning says when it leaves part of the uplink MTU unused.
package lintas.builtin.host_mtu

host(name) := {"kind": "host", "name": name}

deny contains {"msg": msg, "object": host(name)} if {
	some name, h in input.hosts
	tunnel := h.uplink.tunnel_network
	want := input.networks[tunnel].mtu
	h.uplink.mtu != want
	msg := sprintf("host %s: uplink MTU %d does not match the MTU %d of its tunnel network %s in the fabric", [name, h.uplink.mtu, want, tunnel])
}

deny contains {"msg": msg, "object": host(name)} if {
	some name, h in input.hosts
	h.uplink.mtu > input.fabric.mtu
	msg := sprintf("host %s: uplink MTU %d is above the fabric MTU %d", [name, h.uplink.mtu, input.fabric.mtu])
}

deny contains {"msg": msg, "object": host(name)} if {
	some name, h in input.hosts
	some network in h.uplink.networks
	mtu := input.networks[network].mtu
	mtu > h.uplink.mtu
	msg := sprintf("host %s: network %s (MTU %d) is trunked on an uplink with MTU %d; larger frames would be dropped", [name, network, mtu, h.uplink.mtu])
}

deny contains {"msg": msg, "object": host(name)} if {
	some name, h in input.hosts
	need := h.overlay_mtu + h.encap_overhead
	need > h.uplink.mtu
	msg := sprintf("host %s: instance MTU %d + %d bytes of encapsulation exceeds the uplink MTU %d", [name, h.overlay_mtu, h.encap_overhead, h.uplink.mtu])
}

warn contains {"msg": msg, "object": host(name)} if {
	some name, h in input.hosts
	need := h.overlay_mtu + h.encap_overhead
	need < h.uplink.mtu
	msg := sprintf("host %s: instance MTU %d leaves %d bytes of the uplink MTU %d unused", [name, h.overlay_mtu, h.uplink.mtu - need, h.uplink.mtu])
}
