"""The read side of the driver: napalm getters, EVPN getters, ``cli``, ``get_config``.

A mixin of :class:`~workers.drivers.frr.driver.FrrDriver`, kept apart so that each module
stays small; it needs only ``self._run`` (one SSH exec) and ``self._candidate``. Each
getter is one SSH exec whose sections are split by ``@@name`` markers; parsing lives in
:mod:`workers.drivers.frr.getters`.

Verification reads a switch with :meth:`ReadsMixin.get_fabric_state` (one exec, one ``vtysh``
with several ``-c``) and pings with :meth:`ReadsMixin.ping_many` (one exec, the pings at once),
all over the driver's one SSH session: each exec is a channel of it, never a new handshake.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from typing import TYPE_CHECKING, Any

from lintas.workers.drivers.frr import getters, revert
from lintas.workers.drivers.frr.candidate import Candidate, mask_secrets
from lintas.workers.drivers.frr.errors import FrrCommandError
from lintas.workers.drivers.frr.remote import mark, parse_sections
from lintas.workers.drivers.frr.ssh import Result
from lintas.workers.drivers.frr.state import Capabilities

if TYPE_CHECKING:
    from collections.abc import Callable


_SAFE_ARG = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]{0,63}")


def _json(text: str, default: Any) -> Any:
    text = text.strip()
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return default


def _vtysh(command: str) -> str:
    return "vtysh -c " + shlex.quote(command)


def _vtysh_many(commands: list[str]) -> str:
    return "vtysh " + " ".join("-c " + shlex.quote(c) for c in commands)


def json_docs(text: str) -> list[Any]:
    """The JSON documents printed one after another (what one ``vtysh`` with several JSON
    ``-c`` commands prints); raises ValueError on anything else."""
    dec = json.JSONDecoder()
    docs: list[Any] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            return docs
        try:
            doc, i = dec.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a sequence of JSON documents: {exc}") from None
        docs.append(doc)


_NONCE = re.compile(r"[0-9a-f]{16,64}")

# default BGP instance only: "neighbor <addr|group> password <pw>" and "neighbor <addr> peer-group <group>";
# each password is hashed with the nonce on the switch (printf: the password is data, never a command)
_KEYS_AWK = (
    '/^router bgp/ {dflt = ($4 != "vrf"); next} '
    "/^[^ !]/ {dflt = 0} "
    'dflt && $1 == "neighbor" && ($3 == "password" || $3 == "peer-group") && NF >= 4 {print $2, $3, $4}'
)
_KEYS_LOOP = (
    'while read -r n k v; do if [ "$k" = password ]; then '
    'printf \'%s password %s\\n\' "$n" "$(printf \'%s%s\' NONCE "$v" | sha256sum | cut -c1-32)"; '
    'else printf \'%s peer-group %s\\n\' "$n" "$v"; fi; done'
)


def session_keys_filter(nonce: str) -> str:
    """The shell filter of a running config (stdin) that prints ``<neighbor> password <digest>``
    and ``<neighbor> peer-group <group>`` lines of the default BGP instance; the digest is
    ``sha256(nonce + password)`` (32 hex digits)."""
    if not _NONCE.fullmatch(nonce):
        raise ValueError("session_keys: the nonce must be 16 to 64 lowercase hex digits")
    return f"awk {shlex.quote(_KEYS_AWK)} | " + _KEYS_LOOP.replace("NONCE", nonce)


def session_keys_script(nonce: str) -> str:
    return "vtysh -c 'show running-config bgpd' 2>/dev/null | " + session_keys_filter(nonce)


def parse_session_keys(text: str) -> dict[str, str]:
    """``{neighbor address: digest}`` from :func:`session_keys_script`'s lines: a neighbor's own
    password, else its peer-group's, else ``""``. Peer-groups themselves are left out."""
    own: dict[str, str] = {}
    group_of: dict[str, str] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) != 3:
            continue
        name, kind, value = words
        if kind == "password":
            own[name] = value
        elif kind == "peer-group":
            group_of[name] = value
    out = {}
    for name in set(own) | set(group_of):
        if _is_address(name):
            out[name] = own.get(name) or own.get(group_of.get(name, ""), "")
    return out


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def pending_parts(revert_dir: str) -> list[tuple[str, str]]:
    """The sections that tell the commit pending on the device (see :func:`parse_pending`)."""
    d = shlex.quote(revert_dir)
    return [
        ("pstatus", "(" + revert.pending_status(revert_dir).strip() + ")"),
        ("pmarker", f"head -n 1 {d}/pending 2>/dev/null || head -n 1 {d}/reverting 2>/dev/null"),
        ("pmeta", f"cat {d}/checkpoint/meta.json 2>/dev/null"),
        ("pnow", "date +%s"),
    ]


def parse_pending(sections: dict[str, str]) -> dict[str, Any] | None:
    """``get_pending_commit``'s answer from :func:`pending_parts`' sections."""
    status = sections.get("pstatus", "").strip() or "none"
    if status == "none":
        return None
    marker = sections.get("pmarker", "").split()
    meta = _json(sections.get("pmeta", ""), {})
    token = marker[0] if marker else None
    deadline = int(marker[1]) if len(marker) > 1 and marker[1].isdigit() else None
    now_text = sections.get("pnow", "0").strip()
    now = int(now_text) if now_text.isdigit() else 0
    same = isinstance(meta, dict) and token is not None and meta.get("id") == token
    return {
        "status": status,
        "checkpoint": token,
        "message": str(meta.get("message", "")) if same else "",
        "created_at": meta.get("created_at") if same else None,
        "revert_in": meta.get("revert_in") if same else None,
        "deadline": deadline,
        "seconds_left": max(0, deadline - now) if deadline is not None and now else None,
    }


_STATE_BGP = ["show bgp vrf all neighbors json", "show bgp vrf all summary json", "show ip route json"]
_STATE_EVPN = ["show evpn vni json", "show evpn vni detail json"]


ADJ_MAX_BYTES = 1_000_000  # the route audit's answers, per switch and read: beyond, the read fails


def _is_prefix(text: str) -> bool:
    try:
        net = ipaddress.IPv4Network(text)
    except ValueError:
        return False
    return str(net) == text


def adj_commands(
    adj: list[tuple[str, str]], prefixes: list[str] | None = None
) -> list[tuple[tuple[str, str, str], str]]:
    """The ``vtysh`` commands of an audit (see ``get_fabric_state``), each with what it answers:
    ``(family, "local"|"out"|"in"|"prefix", neighbor or prefix)``. EVPN: the type-3 table and,
    per neighbor, its adj-RIB-out and what the switch holds from it (FRR 8.4 has no per-route
    lookup for these). IPv4 unicast: one ``show bgp ipv4 unicast <prefix> json`` per prefix (its
    best path, the peers it is advertised to, the peers it was received from), never a whole table.
    Refuses anything but a family, an address and an IPv4 prefix."""
    out: list[tuple[tuple[str, str, str], str]] = []
    bad = sorted(ip for _, ip in adj if not _is_address(ip)) + sorted(p for p in prefixes or [] if not _is_prefix(p))
    if bad:
        raise ValueError(f"adj: not an address or a prefix: {bad[0]!r}")
    for family in sorted({f for f, _ in adj}):
        words = getters.ADJ_FAMILIES.get(family)
        if words is None:
            raise ValueError(f"adj: unknown family {family!r}")
        if family == "ipv4":
            if not prefixes:
                raise ValueError("adj: IPv4 unicast is audited per prefix: no prefixes given")
            for prefix in sorted(set(prefixes), key=ipaddress.IPv4Network):
                out.append((("ipv4", "prefix", prefix), f"show bgp ipv4 unicast {prefix} json"))
            continue
        out.append(((family, "local", ""), "show bgp l2vpn evpn route type multicast json"))
        for ip in sorted({ip for f, ip in adj if f == family}, key=ipaddress.ip_address):
            out.append(((family, "out", ip), f"show bgp {words} neighbors {ip} advertised-routes json"))
            out.append(((family, "in", ip), f"show bgp {words} neighbors {ip} routes json"))
    return out


def adj_answers(
    audit: list[tuple[tuple[str, str, str], str]], docs: list[Any], neighbors: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """``get_fabric_state``'s ``"adj"`` from the answers to :func:`adj_commands`, in order.
    ``neighbors``: the IPv4 neighbors audited (each gets an ``out`` and an ``in``, empty when
    the prefixes read name it nowhere)."""
    out: dict[str, dict[str, Any]] = {}
    for ((family, what, key), _), doc in zip(audit, docs, strict=True):
        got = out.setdefault(family, {"local": {}, "out": {}, "in": {}})
        body = doc if isinstance(doc, dict) else {}
        if what == "local":
            got["local"] = getters.best_routes(family, body)
        elif what == "out":
            got["out"][key] = getters.advertised_routes(family, body)
        elif what == "in":
            got["in"][key] = getters.neighbor_routes(family, body)
        else:
            best, to, frm = getters.prefix_entry(body)
            for ip in neighbors or []:
                got["out"].setdefault(ip, {})
                got["in"].setdefault(ip, [])
            if best is not None:
                got["local"][key] = best
                for ip in to:
                    got["out"].setdefault(ip, {})[key] = best
            for ip in frm:
                got["in"].setdefault(ip, []).append(key)
    return out


def audit_script(audit: list[tuple[tuple[str, str, str], str]], families: list[str]) -> str:
    """The audit's reads: its EVPN commands in one ``vtysh``; each IPv4 prefix in a ``vtysh`` of
    its own under a marker ``p<i>`` (FRR prints nothing for a prefix it does not have, so a
    batch could not be told apart); each family's update-groups (text only in FRR 8.4) under
    ``ug_<family>``."""
    batch = [c for (_, what, _), c in audit if what != "prefix"]
    lines = [_vtysh_many(batch)] if batch else []
    for i, ((_, what, _), c) in enumerate(audit):
        if what == "prefix":
            lines += [mark(f"p{i}"), _vtysh(c)]
    for family in sorted(set(families)):
        lines += [mark(f"ug_{family}"), _vtysh(f"show bgp {getters.ADJ_FAMILIES[family]} update-groups")]
    return "\n".join(lines)


def _capped(script: str, cap: int) -> str:
    """``script`` with its output cut on the switch at ``cap`` bytes; the ``adj_end`` marker it
    ends with is missing from what comes back when the cut fell."""
    return f"{{\n{script}\n{mark('adj_end')}\n}} 2>/dev/null | head -c {int(cap)}"


class ReadsMixin:
    _candidate: Candidate | None
    _run: Callable[..., Result]
    _setup: Callable[[], Any]  # the device's capabilities (cached after the first exec)
    _caps: Capabilities | None
    revert_dir: str

    def _sections(self, parts: list[tuple[str, str]], what: str) -> dict[str, str]:
        script = "\n".join(f"{mark(name)}\n{cmd}" for name, cmd in parts) + f"\n{mark('end')}\n"
        res = self._run(script, what=what)
        sections = parse_sections(res.stdout)
        if "end" not in sections:
            raise FrrCommandError(f"{what}: incomplete answer from the device: {res.stderr.strip()[-300:]}")
        return sections

    # -- napalm getters -------------------------------------------------------------------

    def get_facts(self) -> dict[str, Any]:
        s = self._sections(
            [
                ("host", "uname -n; hostname -f 2>/dev/null || uname -n; uname -r; cat /proc/uptime"),
                ("version", _vtysh("show version")),
                ("serial", "cat /sys/class/dmi/id/product_serial 2>/dev/null || true"),
                ("links", "ip -j link show"),
            ],
            "get_facts",
        )
        host = s["host"].splitlines() + ["", "", "", ""]
        return getters.facts(
            hostname=host[0].strip(),
            fqdn=host[1].strip(),
            kernel=host[2].strip(),
            uptime_text=host[3],
            version_text=s["version"],
            links=_json(s["links"], []),
            serial=s.get("serial", "").strip(),
        )

    def get_interfaces(self) -> dict[str, dict[str, Any]]:
        s = self._sections(
            [
                ("links", "ip -j link show"),
                (
                    "speed",
                    "for f in /sys/class/net/*/speed; do n=${f%/speed}; "
                    'printf \'%s %s\\n\' "${n##*/}" "$(cat "$f" 2>/dev/null)"; done',
                ),
            ],
            "get_interfaces",
        )
        speeds: dict[str, int] = {}
        for line in s["speed"].splitlines():
            name, _, value = line.partition(" ")
            if value.strip().lstrip("-").isdigit():
                speeds[name] = int(value)
        return getters.interfaces(_json(s["links"], []), speeds)

    def get_interfaces_ip(self) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
        s = self._sections([("addrs", "ip -j addr show")], "get_interfaces_ip")
        return getters.interfaces_ip(_json(s["addrs"], []))

    def get_bgp_neighbors(self) -> dict[str, dict[str, Any]]:
        s = self._sections(
            [("n", _vtysh("show bgp vrf all neighbors json")), ("s", _vtysh("show bgp vrf all summary json"))],
            "get_bgp_neighbors",
        )
        return getters.bgp_neighbors(_json(s["n"], {}), _json(s["s"], {}))

    def cli(self, commands: list[str], encoding: str = "text") -> dict[str, str | dict[str, Any]]:
        """FRR exec commands through vtysh; ``encoding="json"`` parses each answer."""
        if encoding not in ("text", "json"):
            raise ValueError("encoding must be 'text' or 'json'")
        parts = [(f"c{i}", _vtysh(c)) for i, c in enumerate(commands)]
        s = self._sections(parts, "cli") if parts else {}
        out: dict[str, str | dict[str, Any]] = {}
        for i, c in enumerate(commands):
            text = s.get(f"c{i}", "")
            out[c] = _json(text, {}) if encoding == "json" else text
        return out

    def get_config(
        self, retrieve: str = "all", full: bool = False, sanitized: bool = False, format: str = "text"
    ) -> dict[str, str]:
        if format != "text":
            raise NotImplementedError("the frr driver returns configurations as text only")
        out = {"running": "", "startup": "", "candidate": ""}
        parts: list[tuple[str, str]] = []
        if retrieve in ("all", "running"):
            parts += self._running_parts()
        if retrieve in ("all", "startup"):
            parts.append(("startup", "cat /etc/frr/frr.conf"))
        if parts:
            s = self._sections(parts, "get_config")
            if "running" in s:
                out["running"] = s["running"].strip() + "\n" + _linux_summary(s)
            out["startup"] = s.get("startup", "")
        if retrieve in ("all", "candidate") and self._candidate is not None:
            out["candidate"] = self._candidate.masked_text()
        if sanitized:
            out = {k: mask_secrets(v) for k, v in out.items()}
        return out

    def _running_parts(self) -> list[tuple[str, str]]:
        return [
            ("running", _vtysh("show running-config")),
            ("applied", f"cat {shlex.quote(self.revert_dir)}/applied.json 2>/dev/null"),
            ("links", "ip -j -d link show"),
            ("addrs", "ip -j addr show"),
        ]

    def get_running_and_pending(self) -> tuple[str, dict[str, Any] | None]:
        """``get_config(retrieve="running")["running"]`` and ``get_pending_commit()`` in one exec
        (what a drift scan reads of a switch that did not change)."""
        self._setup()
        s = self._sections(self._running_parts() + pending_parts(self.revert_dir), "get_running_and_pending")
        return s["running"].strip() + "\n" + _linux_summary(s), parse_pending(s)

    def ping(
        self,
        destination: str,
        source: str = "",
        ttl: int = 255,
        timeout: int = 2,
        size: int = 100,
        count: int = 5,
        vrf: str = "",
        source_interface: str = "",
    ) -> dict[str, Any]:
        """napalm ``ping``, run on the switch with iputils ``ping``."""
        return self._ping(
            destination, source or source_interface, ttl=ttl, timeout=timeout, size=size, count=count, vrf=vrf, df=False
        )

    def ping_df(
        self, destination: str, source: str = "", size: int = 100, count: int = 3, timeout: int = 2
    ) -> dict[str, Any]:
        """A ping with the don't-fragment bit (``-M do``): ``size`` is the ICMP payload, so a full
        ``mtu`` probe is ``size = mtu - 28``. Fails when any hop's MTU is smaller."""
        return self._ping(destination, source, ttl=255, timeout=timeout, size=size, count=count, vrf="", df=True)

    def _ping(
        self, destination: str, source: str, *, ttl: int, timeout: int, size: int, count: int, vrf: str, df: bool
    ) -> dict[str, Any]:
        for what, value in (("destination", destination), ("source", source), ("vrf", vrf)):
            if value and not _SAFE_ARG.fullmatch(value):
                raise ValueError(f"ping {what} {value!r}: not an address or interface name")
        argv = [
            "ping",
            "-n",
            "-c",
            str(int(count)),
            "-W",
            str(int(timeout)),
            "-s",
            str(int(size)),
            "-t",
            str(int(ttl)),
            "-i",
            "0.2",
        ]
        if source:
            argv += ["-I", source]
        if df:
            argv += ["-M", "do"]
        argv.append(destination)
        command = " ".join(argv)
        if vrf:
            command = f"ip vrf exec {vrf} {command}"
        res = self._run(command + " 2>&1", timeout=float(count * (timeout + 1) + 10), what="ping")
        return getters.ping_result(res.stdout, res.returncode)

    def get_ipv4_routes(self) -> dict[str, dict[str, Any]]:
        """The default VRF's IPv4 RIB: ``{prefix: {"protocol", "selected", "installed", "nexthops"}}``."""
        s = self._sections([("r", _vtysh("show ip route json"))], "get_ipv4_routes")
        return getters.ipv4_routes(_json(s["r"], {}))

    # -- verification: everything in one exec ---------------------------------------------

    def get_fabric_state(
        self,
        evpn: bool = True,
        pending: bool = False,
        session_keys: str | None = None,
        adj: list[tuple[str, str]] | None = None,
        prefixes: list[str] | None = None,
        adj_max_bytes: int = ADJ_MAX_BYTES,
    ) -> dict[str, Any]:
        """What verification reads of a switch, in **one** exec and one ``vtysh`` process:
        ``{"bgp": get_bgp_neighbors(), "bgp_summary": raw summary JSON, "routes":
        get_ipv4_routes(), "vnis": get_evpn_vnis() ({} unless ``evpn``), "interfaces":
        get_interfaces() (without speeds), "kernel": {"capabilities": ...}}``.

        FRR prints nothing at all for an EVPN command on a switch without EVPN, so the answers
        are told apart by their count; when it is not one per command, the commands are run
        again each in its own ``vtysh`` (still one exec). With ``pending``, ``"pending"`` is
        ``get_pending_commit()``'s answer, read in the same exec.

        With ``session_keys`` (a nonce: hex digits), ``"session_keys"`` is ``{neighbor address:
        digest}`` for every neighbor of the default BGP instance: a digest of the nonce and the
        TCP MD5 password the neighbor is configured with (its own, else its peer-group's; ``""``
        when none). The digests are taken on the switch, so the passwords never leave it; with a
        fresh nonce per verification they can be compared between the two ends of a session, and
        with nothing else.

        With ``adj`` (``[(family, neighbor address)]``, family ``"ipv4"`` or ``"evpn"``), ``"adj"`` is
        ``{family: {"local": {route: AS path of the best path}, "out": {neighbor: {route: AS path}},
        "in": {neighbor: [route]}, "settled": {neighbor: bool}}}``: the local table, the adj-RIB-out
        to each neighbor (after the outbound policy) and what the switch holds from it (after the
        inbound policy; FRR gives both without ``soft-reconfiguration inbound``), and whether
        nothing waits to be sent to each neighbor (``update-groups``: FRR 8.4 prints it as text
        only). EVPN: the type-3 table, ``advertised-routes`` and ``routes`` of each neighbor given.
        IPv4 unicast: only the ``prefixes`` given, one ``show bgp ipv4 unicast <prefix> json`` each
        (its ``advertisedTo`` is the adj-RIB-out, its paths' peers what the switch holds from whom).
        Routes are keyed ``"<rd> <prefix>"`` (EVPN) or by prefix. The audit's reads run in a
        ``vtysh`` of their own in the same exec, their output cut on the switch at
        ``adj_max_bytes``: beyond it the read fails (:class:`FrrCommandError`) rather than carry
        megabytes."""
        commands = _STATE_BGP + (_STATE_EVPN if evpn else [])
        audit = adj_commands(adj or [], prefixes)
        parts = [("vtysh", _vtysh_many(commands)), ("links", "ip -j -d link show")]
        if audit:
            parts.append(("adj", _capped(audit_script(audit, [f for f, _ in adj or []]), adj_max_bytes)))
        if self._caps is None:  # the kernel's capabilities as the driver's setup recorded them, in the same exec
            parts.append(("caps", f"cat {shlex.quote(self.revert_dir)}/caps 2>/dev/null"))
        if evpn:
            parts += [
                ("vlans", "bridge -j vlan show 2>/dev/null || echo []"),
                ("applied", f"cat {shlex.quote(self.revert_dir)}/applied.json 2>/dev/null"),
            ]
        if pending:
            parts += pending_parts(self.revert_dir)
        if session_keys is not None:
            parts.append(("keys", session_keys_script(session_keys)))
        s = self._sections(parts, "get_fabric_state")
        try:
            docs = json_docs(s["vtysh"])
        except ValueError:
            docs = []
        if len(docs) != len(commands):
            again = self._sections([(f"c{i}", _vtysh(c)) for i, c in enumerate(commands)], "get_fabric_state")
            docs = [_json(again.get(f"c{i}", ""), {}) for i in range(len(commands))]
        caps = self._caps
        if caps is None:
            lines = s.get("caps", "").splitlines() + ["", ""]
            # never set up on this switch: the setup exec (it probes the kernel and caches the answer)
            caps = Capabilities.from_words(lines[0], lines[1].split(" ", 1)[-1]) if lines[1] else self._setup()
        neighbors, summary, routes = docs[0], docs[1], docs[2]
        links = _json(s["links"], [])
        out: dict[str, Any] = {
            "bgp": getters.bgp_neighbors(
                neighbors if isinstance(neighbors, dict) else {}, summary if isinstance(summary, dict) else {}
            ),
            "bgp_neighbors_raw": neighbors if isinstance(neighbors, dict) else {},
            "bgp_summary": summary if isinstance(summary, dict) else {},
            "routes": getters.ipv4_routes(routes if isinstance(routes, dict) else {}),
            "interfaces": getters.interfaces(links if isinstance(links, list) else []),
            "kernel": {"mode": caps.mode, "capabilities": caps.to_json()},
            "vnis": {},
        }
        if pending:
            out["pending"] = parse_pending(s)
        if session_keys is not None:
            out["session_keys"] = parse_session_keys(s.get("keys", ""))
        if audit:
            out["adj"] = self._audit_answers(audit, s, adj or [], adj_max_bytes)
        if evpn:
            applied = _json(s.get("applied", ""), {})
            modelled = applied.get("vni_vlans", {}) if isinstance(applied, dict) else {}
            vni, detail = docs[3], docs[4]
            out["vnis"] = getters.evpn_vnis(
                vni if isinstance(vni, dict) else {},
                detail if isinstance(detail, (list, dict)) else [],
                getters.with_pvids(links, _json(s.get("vlans", ""), [])),
                modelled,
            )
        return out

    def _audit_answers(
        self, audit: list[tuple[tuple[str, str, str], str]], s: dict[str, str], adj: list[tuple[str, str]], cap: int
    ) -> dict[str, dict[str, Any]]:
        """The audit's answers from its capped section (``adj`` .. ``adj_end``); when the EVPN
        batch's JSON documents are not one per command, each again in a ``vtysh`` of its own (a
        second exec, under the same cap)."""
        if "adj_end" not in s:
            raise FrrCommandError(
                f"{getattr(self, 'hostname', 'switch')}: the route audit's answers ({len(audit)} reads) "
                f"exceed {cap} bytes: read stopped"
            )
        batch = [i for i, ((_, what, _), _) in enumerate(audit) if what != "prefix"]
        try:
            docs = json_docs(s.get("adj", "")) if batch else []
        except ValueError:
            docs = []
        if len(docs) != len(batch):
            script = "\n".join(f"{mark(f'c{i}')}\n{_vtysh(audit[i][1])}" for i in batch)
            again = self._sections([("adj", _capped(script, cap))], "get_fabric_state")
            if "adj_end" not in again:
                raise FrrCommandError(
                    f"{getattr(self, 'hostname', 'switch')}: the route audit's answers exceed {cap} bytes: read stopped"
                )
            docs = [_json(again.get(f"c{i}", ""), {}) for i in batch]
        by_index = dict(zip(batch, docs, strict=True))
        answers = [by_index[i] if i in by_index else _json(s.get(f"p{i}", ""), {}) for i in range(len(audit))]
        ipv4 = sorted({ip for f, ip in adj if f == "ipv4"})
        out = adj_answers(audit, answers, ipv4)
        for family, got in out.items():
            got["settled"] = getters.update_groups(s.get(f"ug_{family}", ""))
        return out

    def ping_many(self, probes: list[dict[str, Any]], timeout: int = 1) -> list[dict[str, Any]]:
        """Several pings at once in one exec: each probe ``{"destination", "source", "size",
        "df"}`` is one ``ping -c 1``; returns napalm ``ping`` results in the same order."""
        if not probes:
            return []
        lines = ["d=$(mktemp -d) || exit 1"]
        for i, p in enumerate(probes):
            for what in ("destination", "source"):
                value = str(p.get(what) or "")
                if value and not _SAFE_ARG.fullmatch(value):
                    raise ValueError(f"ping {what} {value!r}: not an address or interface name")
            argv = ["ping", "-n", "-c", "1", "-W", str(int(timeout)), "-s", str(int(p.get("size", 56)))]
            if p.get("source"):
                argv += ["-I", str(p["source"])]
            if p.get("df"):
                argv += ["-M", "do"]
            argv.append(str(p["destination"]))
            lines.append(f'{" ".join(argv)} > "$d/{i}" 2>&1; echo "rc=$?" >> "$d/{i}" &')
        lines.append("wait")
        for i in range(len(probes)):
            lines += [mark(f"p{i}"), f'cat "$d/{i}"']
        lines += ['rm -rf "$d"', mark("end")]
        res = self._run("\n".join(lines) + "\n", timeout=float(timeout + 15), what="ping_many")
        sections = parse_sections(res.stdout)
        if "end" not in sections:
            raise FrrCommandError(f"ping_many: incomplete answer from the device: {res.stderr.strip()[-300:]}")
        out = []
        for i in range(len(probes)):
            text = sections.get(f"p{i}", "")
            rc = re.search(r"^rc=(\d+)$", text, re.M)
            out.append(getters.ping_result(re.sub(r"^rc=\d+$", "", text, flags=re.M), int(rc.group(1)) if rc else 1))
        return out

    # -- EVPN getters (not in napalm's base) ------------------------------------------------

    def get_evpn_peers(self) -> dict[str, dict[str, Any]]:
        """L2VPN EVPN sessions: ``{peer: {"state", "is_up", "remote_as", "prefixes_received", ...}}``."""
        s = self._sections([("s", _vtysh("show bgp vrf all summary json"))], "get_evpn_peers")
        return getters.evpn_peers(_json(s["s"], {}))

    def get_evpn_vnis(self) -> dict[int, dict[str, Any]]:
        """``{vni: {"type": "L2"|"L3", "bridge", "vlan", "remote_vteps": [sorted], ...}}``."""
        s = self._sections(
            [
                ("v", _vtysh("show evpn vni json")),
                ("d", _vtysh("show evpn vni detail json")),
                ("links", "ip -j -d link show"),
                ("vlans", "bridge -j vlan show 2>/dev/null || echo []"),
                ("applied", f"cat {shlex.quote(self.revert_dir)}/applied.json 2>/dev/null"),
            ],
            "get_evpn_vnis",
        )
        links = getters.with_pvids(_json(s["links"], []), _json(s["vlans"], []))
        applied = _json(s["applied"], {})
        modelled = applied.get("vni_vlans", {}) if isinstance(applied, dict) else {}
        return getters.evpn_vnis(_json(s["v"], {}), _json(s["d"], []), links, modelled)

    def get_evpn_macs(self, vni: int) -> dict[str, dict[str, Any]]:
        """``{mac: {"type": "local"|"remote", "interface", "remote_vtep", "vlan"}}`` of one VNI."""
        s = self._sections([("m", _vtysh(f"show evpn mac vni {int(vni)} json"))], "get_evpn_macs")
        return getters.evpn_macs(_json(s["m"], {}))


def _linux_summary(s: dict[str, str]) -> str:
    """The managed Linux side, as ``!`` comment lines after FRR's running config."""
    applied = _json(s.get("applied", ""), None)
    if not isinstance(applied, dict):
        return "! linux: no commit by the lintas frr driver on this device\n"
    links = {str(e.get("ifname")): e for e in _json(s.get("links", ""), [])}
    addrs = getters.interfaces_ip(_json(s.get("addrs", ""), []))
    lines = [f"! linux: kernel mode {applied.get('mode')}, checkpoint {applied.get('checkpoint')}"]
    for name in applied.get("links", {}):
        e = links.get(name)
        if e is None:
            lines.append(f"! linux: {name} missing")
            continue
        kind = (e.get("linkinfo") or {}).get("info_kind", "port")
        ips = sorted(
            ip + "/" + str(v["prefix_length"])
            for fam in addrs.get(name, {}).values()
            for ip, v in fam.items()
            if not ip.startswith(("fe80", "127.", "::1"))
        )
        lines.append(
            f"! linux: {name} {kind} mtu {e.get('mtu')} {'up' if 'UP' in e.get('flags', []) else 'down'}"
            f" master {e.get('master', '-')} mac {e.get('address', '-')}"
            + (f" addresses {','.join(ips)}" if ips else "")
        )
    for text in applied.get("unsupported", []):
        lines.append(f"! linux: unsupported_on_this_kernel: {text}")
    return "\n".join(lines) + "\n"
