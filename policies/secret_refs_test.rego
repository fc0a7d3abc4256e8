package lintas.builtin.secret_refs_test

import data.lintas.builtin.secret_refs

test_references_pass if {
	inv := {"defaults": {"password": "env:SSH_PASSWORD", "connection_options": {"ssh": {"extras": {"private_key": "file:/etc/key", "strict_host_key_checking": true}}}}}
	count(secret_refs.deny) == 0 with input as {"inventory": inv}
}

test_null_password_passes if {
	count(secret_refs.deny) == 0 with input as {"inventory": {"hosts": {"a": {"password": null}}}}
}

test_inline_password_denied_without_value if {
	denies := secret_refs.deny with input as {"inventory": {"hosts": {"leaf-01": {"data": {"snmp_community": "public123"}}}}}
	count(denies) == 1
	some d in denies
	d.object.name == "hosts.leaf-01.data.snmp_community"
	not contains(d.msg, "public123")
}

test_nested_list_secret_denied if {
	count(secret_refs.deny) == 1 with input as {"inventory": {"groups": {"g": {"data": {"users": [{"name": "x", "api_key": "abc"}]}}}}}
}

test_template_variables_pass if {
	text := "router bgp {{ asn }}\n neighbor {{ ip }} password {{ password }}\n neighbor x password 7 {{ p }}\n{{ secret | default('') }}\n"
	count(secret_refs.deny) == 0 with input as {"templates": {"templates/frr/frr.conf.j2": text}}
}

test_template_env_and_comments_pass if {
	text := "# password hunter2 in a comment\n! community public\nsnmp community ${SNMP_COMMUNITY}\n"
	count(secret_refs.deny) == 0 with input as {"templates": {"t.j2": text}}
}

test_literal_template_secret_denied_with_line if {
	text := "hostname x\nsnmp-server community s3cr3t ro\n"
	some d in secret_refs.deny with input as {"templates": {"templates/eos/snmp.j2": text}}
	d.object == {"kind": "file", "name": "templates/eos/snmp.j2", "line": 2}
	not contains(d.msg, "s3cr3t")
}

test_literal_typed_password_denied if {
	count(secret_refs.deny) == 1 with input as {"templates": {"t.j2": "neighbor 10.0.0.1 password 7 0822455D0A16\n"}}
}
