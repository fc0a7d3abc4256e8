# No secret material in the inventory or the templates.
#
# Inventory: every value under a key that names a secret (password, secret, token, api key,
# private key, community, psk, passphrase, credential) is a reference, env:NAME or
# file:/path, at any depth (defaults, groups, hosts, connection options, data).
# Templates (the repo's templates/ overrides, input.templates): no line writes a secret
# literally after a secret keyword (password, secret, community, key-string, ...): the value
# must come from the model ({{ ... }}) or the environment ($NAME, ${NAME}).
# Messages name the place, never the value.
package lintas.builtin.secret_refs

ref_pattern := `^(env:[A-Za-z_][A-Za-z0-9_]*|file:\S+)$`

# key fragments that name a secret (matched case-insensitively, anywhere in the key)
secret_words := {"password", "passwd", "passphrase", "secret", "token", "apikey", "api_key", "api-key",
	"private_key", "private-key", "privatekey", "community", "psk", "credential"}

keywords := {
	"password", "passwd", "secret", "community", "key-string", "authentication-key",
	"pre-shared-key", "psk", "md5", "token", "api_key", "apikey",
}

is_ref(value) if {
	is_string(value)
	regex.match(ref_pattern, value)
}

names_secret(key) if {
	some word in secret_words
	contains(lower(key), word)
}

dotted(path) := concat(".", [sprintf("%v", [p]) | some p in path])

# cheap tests first: walk visits every node of the inventory (10k+ on a large fabric)
deny contains {"msg": msg, "object": {"kind": "inventory", "name": dotted(path)}} if {
	walk(input.inventory, [path, value])
	scalar(value)
	key := path[count(path) - 1]
	is_string(key)
	names_secret(key)
	not is_ref(value)
	msg := sprintf("inventory %s: a secret must be a reference (env:NAME or file:/path), not the value itself", [dotted(path)])
}

scalar(value) if is_string(value)

scalar(value) if is_number(value)

words(line) := [w | some w in split(replace(trim_space(line), "\t", " "), " "); w != ""]

# the value after a keyword, skipping a one-digit encryption type ("password 7 ...")
value_after(ws, i) := ws[i + 2] if {
	regex.match(`^[0-9]$`, ws[i + 1])
	count(ws) > i + 2
}

value_after(ws, i) := ws[i + 1] if not regex.match(`^[0-9]$`, ws[i + 1])

unquoted(value) := trim(value, "\"',;")

from_elsewhere(value) if startswith(unquoted(value), "{{")

from_elsewhere(value) if startswith(unquoted(value), "{%")

# the keyword was itself inside a template expression: {{ password }}, {{ x | password }}
from_elsewhere(value) if startswith(unquoted(value), "}")

from_elsewhere(value) if startswith(unquoted(value), "%}")

from_elsewhere(value) if startswith(unquoted(value), "|")

from_elsewhere(value) if regex.match(`^\$\{?[A-Za-z_]`, unquoted(value))

from_elsewhere(value) if is_ref(unquoted(value))

from_elsewhere(value) if unquoted(value) == ""

literal_secret(line) if {
	ws := words(line)
	some i, w in ws
	trim_right(lower(w), ":=") in keywords
	value := value_after(ws, i)
	not from_elsewhere(value)
}

deny contains {"msg": msg, "object": {"kind": "file", "name": file, "line": n + 1}} if {
	some file, text in input.templates
	some n, line in split(text, "\n")
	not startswith(trim_space(line), "#")
	not startswith(trim_space(line), "!")
	literal_secret(line)
	msg := sprintf("%s:%d: a secret is written literally in the template; render it from a reference instead", [file, n + 1])
}
