"""``frr-reload.py --test`` output -> one line per change (pure).

frr-reload prints two sections, ``Lines To Delete`` and ``Lines To Add``; each entry is
its context lines (``router bgp 65111``, `` address-family ipv4 unicast``) followed by
the changed line, an entry starting at every non-indented line. We print each entry
as one line, its context joined with ``" > "``::

    - no ip forwarding
    + router bgp 65111 > address-family l2vpn evpn > vni 10010 > route-target import 65000:10010

Entries that only open a context which the next entry of the same section refines,
and context closers (``exit-vrf``), are dropped (``+ router bgp 65111`` followed by ``+ router bgp 65111 > bgp router-id ...``):
they say nothing the detailed line does not. ``frr version`` and similar lines that
frr-reload reports as "cannot be removed" never show up here (they go to its log).
"""

from __future__ import annotations

import re

_HEADS = {"Lines To Delete": "-", "Lines To Add": "+"}
_RULE = re.compile(r"^=+$")
_CLOSERS = frozenset({"exit", "exit-vrf", "exit-vni", "exit-address-family", "end"})


def parse_reload_test(output: str) -> list[str]:
    """Change lines (``"- ..."``, ``"+ ..."``) from frr-reload.py ``--test`` stdout."""
    entries: list[tuple[str, tuple[str, ...]]] = []
    sign: str | None = None
    current: list[str] = []

    def flush() -> None:
        if sign is not None and current:
            entries.append((sign, tuple(x.strip() for x in current)))
        current.clear()

    for raw in output.splitlines():
        line = raw.rstrip()
        head = _HEADS.get(line.strip())
        if head is not None:
            flush()
            sign = head
            continue
        if sign is None or not line.strip() or _RULE.match(line.strip()):
            if not line.strip():
                flush()
            continue
        if not line.startswith(" "):
            flush()
        current.append(line)
    flush()
    out: list[str] = []
    for i, (s, path) in enumerate(entries):
        nxt = entries[i + 1] if i + 1 < len(entries) else None
        if nxt is not None and nxt[0] == s and len(nxt[1]) > len(path) and nxt[1][: len(path)] == path:
            continue  # a bare context, refined by the next entry
        if len(path) > 1 and path[-1] in _CLOSERS:
            continue
        out.append(f"{s} {' > '.join(path)}")
    return out


def reload_failed_reason(stderr: str) -> str:
    """The ERROR lines of frr-reload's log (syntax errors of the candidate), without the INFO noise."""
    lines = [ln for ln in stderr.splitlines() if "ERROR" in ln or ln.startswith(("b'", "line ", "%"))]
    text = "\n".join(lines) or "\n".join(stderr.strip().splitlines()[-5:])
    return re.sub(r"\x1b\[[0-9;]*m", "", text)
