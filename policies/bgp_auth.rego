# BGP sessions are authenticated.
#
# Every eBGP session of the fabric (the underlay, which also carries the EVPN overlay)
# uses the TCP-MD5 password or a TCP-AO key named in fabric.underlay, and what the repo
# holds is a reference to the secret (env:NAME or file:/path), never the secret itself.
#
# fabric.underlay.tcp_ao is not in the model yet; when it is, it is a reference string
# or an object whose "key" is one.
package lintas.builtin.bgp_auth

ref_pattern := `^(env:[A-Za-z_][A-Za-z0-9_]*|file:\S+)$`

is_ref(value) if {
	is_string(value)
	regex.match(ref_pattern, value)
}

default fabric_name := "the fabric"

fabric_name := input.fabric.name

default password := null

password := input.fabric.underlay.password

default tcp_ao := null

tcp_ao := input.fabric.underlay.tcp_ao

tcp_ao_secret := tcp_ao if is_string(tcp_ao)

tcp_ao_secret := tcp_ao.key if is_object(tcp_ao)

default sessions := 0

sessions := count(input.links)

where := {"kind": "fabric", "name": fabric_name}

deny contains {"msg": msg, "object": where} if {
	input.fabric.underlay
	password == null
	tcp_ao == null
	msg := sprintf(
		"%s: the %d eBGP session(s) of the underlay and EVPN overlay are not authenticated: set fabric.underlay.password to a secret reference such as env:FABRIC_BGP_PASSWORD (or configure TCP-AO)",
		[fabric_name, sessions],
	)
}

deny contains {"msg": msg, "object": where} if {
	password != null
	not is_ref(password)
	msg := sprintf(
		"%s: fabric.underlay.password holds the secret itself; write a reference (env:NAME or file:/path) and rotate the exposed password",
		[fabric_name],
	)
}

deny contains {"msg": msg, "object": where} if {
	tcp_ao != null
	not is_ref(tcp_ao_secret)
	msg := sprintf(
		"%s: fabric.underlay.tcp_ao must name its key by reference (env:NAME or file:/path), never the key itself",
		[fabric_name],
	)
}
