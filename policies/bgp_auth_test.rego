package lintas.builtin.bgp_auth_test

import data.lintas.builtin.bgp_auth

fabric(underlay) := {"fabric": {"name": "dc1", "underlay": underlay}, "links": [{}, {}]}

test_password_reference_passes if {
	count(bgp_auth.deny) == 0 with input as fabric({"spine_asn": 65000, "password": "env:BGP_PASSWORD"})
}

test_file_reference_passes if {
	count(bgp_auth.deny) == 0 with input as fabric({"password": "file:/run/secrets/bgp"})
}

test_tcp_ao_reference_passes if {
	count(bgp_auth.deny) == 0 with input as fabric({"password": null, "tcp_ao": {"key": "env:AO_KEY"}})
}

test_no_authentication_denied if {
	some d in bgp_auth.deny with input as fabric({"spine_asn": 65000, "password": null})
	contains(d.msg, "2 eBGP session(s)")
	d.object == {"kind": "fabric", "name": "dc1"}
}

test_plaintext_password_denied_without_echoing_it if {
	denies := bgp_auth.deny with input as fabric({"password": "hunter2"})
	count(denies) == 1
	some d in denies
	not contains(d.msg, "hunter2")
}

test_plaintext_tcp_ao_key_denied if {
	count(bgp_auth.deny) == 1 with input as fabric({"tcp_ao": {"key": "0xdeadbeef"}})
}

test_tcp_ao_without_key_denied if {
	count(bgp_auth.deny) == 1 with input as fabric({"tcp_ao": {}})
}
