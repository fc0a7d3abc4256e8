package lintas.builtin.host_mtu_test

import data.lintas.builtin.host_mtu

networks := {"infra-tunnel": {"mtu": 9000}, "web": {"mtu": 9000}, "jumbo": {"mtu": 9100}}

host(uplink_mtu, overlay) := {"uplink": {"mtu": uplink_mtu, "tunnel_network": "infra-tunnel", "networks": ["web"]}, "overlay_mtu": overlay, "encap_overhead": 58}

doc(hosts) := {"fabric": {"mtu": 9216}, "networks": networks, "hosts": hosts}

test_matching_mtu_passes if {
	count(host_mtu.deny) == 0 with input as doc({"h": host(9000, 8942)})
	count(host_mtu.warn) == 0 with input as doc({"h": host(9000, 8942)})
}

test_uplink_differs_from_tunnel_network if {
	some d in host_mtu.deny with input as doc({"h": host(1500, 1442)})
	d.object == {"kind": "host", "name": "h"}
	contains(d.msg, "uplink MTU 1500 does not match the MTU 9000")
}

test_overlay_too_large if {
	count(host_mtu.deny) == 1 with input as doc({"h": host(9000, 8960)})
}

test_trunked_network_too_large if {
	h := object.union(host(9000, 8942), {"uplink": {"mtu": 9000, "tunnel_network": "infra-tunnel", "networks": ["jumbo"]}})
	count(host_mtu.deny) == 1 with input as doc({"h": h})
}

test_above_fabric if {
	denies := host_mtu.deny with input as {"fabric": {"mtu": 9000}, "networks": {"infra-tunnel": {"mtu": 9216}}, "hosts": {"h": {"uplink": {"mtu": 9216, "tunnel_network": "infra-tunnel", "networks": []}, "overlay_mtu": 9158, "encap_overhead": 58}}}
	count(denies) == 1
}

test_unused_headroom_warns if {
	count(host_mtu.warn) == 1 with input as doc({"h": host(9000, 1500)})
}
