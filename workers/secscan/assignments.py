"""Secrets assigned to secret-named keys: ``password: x``, ``API_TOKEN=x``, ``password="x"``.

Python is read with :mod:`tokenize` (a key token, ``=`` or ``:``, then a string literal), so
``"{{secret:" + ref + "}}"`` or ``password = os.environ["X"]`` are not taken for secrets;
other code uses a regular expression on quoted literals; configuration files take the rest
of the line as the value. Device-config templates also have ``password <value>`` forms.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import defaultdict
from collections.abc import Iterator

from lintas.workers.secscan.files import RepoFile

KEY = (
    r"[\w.-]*(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|auth[_-]?key|client[_-]?secret|community|psk|credentials?)[\w.-]*"
)
_KEY = re.compile(rf"(?i)^{KEY}$")
CONFIG_ASSIGNMENT = re.compile(
    rf"""(?i)^[ \t]*(?:-[ \t]*)?(?:export[ \t]+)?["']?({KEY})["']?[ \t]*[:=][ \t]*(.*?)[ \t]*$"""
)
CODE_ASSIGNMENT = re.compile(rf"""(?i)(?<![\w{{"'])["']?({KEY})["']?\s*[:=]\s*(["'])([^"'\n]*)\2""")
CONFIG_KEYWORD = re.compile(
    r"(?i)(?:^|\s)(password|secret|community|key-string|authentication-key|pre-shared-key)\s+(?:[0-9]\s+)?(\S+)"
)
NOT_SECRET_KEY = re.compile(
    r"(?i)(_|-|\.)(file|path|ref|env|url|uri|policy|length|len|min|max|header|type|format|field|prompt|name|id|"
    r"enabled|required|rotation|expiry|expires|ttl|algorithm|checking|command|template|version)$|^(no|skip)[_-]"
)
REFERENCE = re.compile(
    r"""^(?:env:[A-Za-z_]\w*|file:\S+|vault:\S+|secret:\S+|ssm:\S+|keyring:\S+|\$\{?[A-Za-z_][\w.]*\}?|"""
    r"""\{\{.*|\{%.*|%\}|<[^>]*>|%\([\w.]+\)s|\*+|x+|changeme|redacted|example|dummy|none|null|~|true|false|"""
    r"""yes|no|on|off)$""",
    re.IGNORECASE,
)
CODE_SUFFIXES = (".rb", ".js", ".ts", ".go", ".rego")
DEVICE_CONFIG_SUFFIXES = (".j2", ".jinja", ".jinja2", ".conf", ".cfg", ".tmpl", ".tpl")
MIN_SECRET = 4

# (key, value, column) per line
Pairs = dict[int, list[tuple[str, str, int]]]


def clean(value: str) -> str:
    """A configuration value without its trailing comment and quotes."""
    value = re.split(r"\s+[#;]", value, maxsplit=1)[0].strip().rstrip(",;").strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return value.strip()


def is_reference(value: str) -> bool:
    return not value or bool(REFERENCE.match(value))


def looks_secret(key: str, value: str) -> bool:
    return (
        len(value) >= MIN_SECRET
        and not NOT_SECRET_KEY.search(key)
        and not is_reference(value)
        and not value.startswith(("{", "[", "&", "*", "!", "|", ">"))
    )


def python_pairs(text: str) -> Pairs | None:
    """Key/literal pairs of a Python file; None when it does not tokenize (use the regex)."""
    out: Pairs = defaultdict(list)
    prev: list[tokenize.TokenInfo] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                continue
            if tok.type == tokenize.STRING and len(prev) >= 2 and prev[-1].string in ("=", ":"):
                key_tok = prev[-2]
                key = key_tok.string
                if key_tok.type == tokenize.STRING:
                    key = _literal(key) or ""
                value = _literal(tok.string)
                if value is not None and key_tok.type in (tokenize.NAME, tokenize.STRING) and _KEY.match(key):
                    out[tok.start[0]].append((key, value, tok.start[1] + 1))
            prev = [*prev[-1:], tok]
    except (tokenize.TokenError, SyntaxError):
        return None
    return out


def _literal(token: str) -> str | None:
    if token[:1].lower() in ("f", "b") or token[:2].lower() in ("rf", "fr", "br", "rb"):
        return None  # f-strings are computed; bytes are not text secrets here
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def line_pairs(f: RepoFile, line: str, python: Pairs | None, lineno: int) -> list[tuple[str, str, int]]:
    if python is not None:
        return python.get(lineno, [])
    if f.is_python or f.rel.lower().endswith(CODE_SUFFIXES):
        return [(m.group(1), m.group(3), m.start(3) + 1) for m in CODE_ASSIGNMENT.finditer(line)]
    if (m := CONFIG_ASSIGNMENT.match(line)) is not None:
        return [(m.group(1), clean(m.group(2)), m.start(2) + 1)]
    return []


def device_config_secret(f: RepoFile, line: str) -> Iterator[tuple[str, str, int]]:
    """(keyword, value, column) of ``password <literal>`` in device configs and templates."""
    stripped = line.lstrip()
    if not f.rel.lower().endswith(DEVICE_CONFIG_SUFFIXES) or stripped.startswith(("#", "!", "{%", "{#")):
        return
    m = CONFIG_KEYWORD.search(line)
    if m is not None and not is_reference(clean(m.group(2))):
        yield m.group(1).lower(), m.group(2), m.start(2) + 1
