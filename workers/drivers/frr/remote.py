"""Commands the driver runs on a switch to read it: state gathering, capability probe, uploads.

One SSH exec per question: :func:`gather_script` prints every section the planner needs
(capabilities, links, addresses, bridge VLANs, sysctls, ownership record, pending
commit) between ``@@name`` markers, and :func:`parse_sections` splits them back.
Files go up as one in-memory tar on stdin (never on a command line, where ``ps`` would
show them), unpacked with ``umask 077``.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from collections.abc import Mapping
from typing import Any

from lintas.workers.drivers.frr.revert import pending_status, q
from lintas.workers.drivers.frr.state import Capabilities, NetState, parse_state, parse_sysctls

_SYSCTL_KEY = re.compile(r"[a-z0-9_.\-]+")
_MARK = re.compile(r"^@@([a-z0-9_]+)$")

PROBE = """p=lxprobe caps=""
if ip link add ${p}0 type vrf table 4242420 2>/dev/null; then caps="$caps vrf"; ip link del ${p}0; fi
if ip link add ${p}1 type bridge vlan_filtering 1 2>/dev/null; then caps="$caps vlan_filtering"; ip link del ${p}1; fi
if ip link add ${p}2 type bridge 2>/dev/null; then
  if ip link add link ${p}2 name ${p}3 type vlan id 10 2>/dev/null; then caps="$caps vlan"; fi
  ip link del ${p}2
fi
if ip link add ${p}4 type vxlan id 16777001 dstport 47999 nolearning 2>/dev/null; then
  caps="$caps vxlan"; ip link del ${p}4
fi
"""


def setup_script(d: str, timer_sh: str) -> str:
    """Create the driver's directory and (re)write timer.sh; probe the kernel once per boot."""
    return f"""set -e
umask 077
mkdir -p {q(d)}/candidate
chmod 700 {q(d)}
cd {q(d)}
cat > timer.sh.tmp <<'LINTAS_TIMER_EOF'
{timer_sh}LINTAS_TIMER_EOF
mv timer.sh.tmp timer.sh
boot="$(cat /proc/sys/kernel/random/boot_id) $(uname -r)"
if [ ! -f caps ] || [ "$(sed -n 2p caps)" != "$boot" ]; then
{PROBE}  printf '%s\\n%s\\n' "$caps" "$boot" > caps.tmp && mv caps.tmp caps
fi
cat caps
"""


def gather_script(d: str, sysctl_keys: list[str], *, frr_test: tuple[str, str] | None = None) -> str:
    """Print the state sections; with ``frr_test=(frr_reload, file)`` also frr-reload's ``--test`` diff."""
    keys = " ".join(k for k in sysctl_keys if _SYSCTL_KEY.fullmatch(k))
    parts = [
        mark("caps"),
        f"cat {q(d)}/caps 2>/dev/null",
        mark("host"),
        "uname -n; uname -r",
        mark("links"),
        "ip -j -d link show",
        mark("addrs"),
        "ip -j addr show",
        mark("vlans"),
        "bridge -j vlan show 2>/dev/null || echo '[]'",
        mark("sysctl"),
        f"sysctl {keys} 2>/dev/null" if keys else "true",
        mark("applied"),
        f"cat {q(d)}/applied.json 2>/dev/null",
        mark("pending"),
        "(" + pending_status(d).strip() + ")",
    ]
    if frr_test is not None:
        err = q(f"{d}/candidate/test.err")
        parts += [
            mark("frr_test"),
            f"{q(frr_test[0])} --test {q(frr_test[1])} 2> {err}",
            "rc=$?",
            mark("frr_rc"),
            "echo $rc",
            mark("frr_err"),
            f"cat {err}; rm -f {err}",
        ]
    parts.append(mark("end"))
    return "\n".join(parts) + "\n"


def mark(name: str) -> str:
    """The marker line opening section ``name``; preceded by a newline, so that it starts a
    line even after output without a final newline (``cat`` of a JSON file)."""
    return f"printf '\\n@@%s\\n' {name}"


def parse_sections(text: str) -> dict[str, str]:
    """Split marker-separated output (see :func:`mark`) into ``{name: text}``."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        m = _MARK.match(line)
        if m:
            if current and current[-1] == "":
                current.pop()  # the newline mark() printed
            current = out.setdefault(m.group(1), [])
            continue
        if current is not None:
            current.append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def _json(text: str, default: Any) -> Any:
    text = text.strip()
    if not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return default


class Gathered:
    """The parsed answer of :func:`gather_script`."""

    def __init__(self, text: str) -> None:
        s = parse_sections(text)
        if "end" not in s:
            raise ValueError("incomplete state report from the device")
        caps_lines = s.get("caps", "").splitlines()
        host = s.get("host", "").splitlines()
        self.hostname = host[0].strip() if host else ""
        self.kernel = host[1].strip() if len(host) > 1 else ""
        self.caps = Capabilities.from_words(caps_lines[0] if caps_lines else "", self.kernel)
        self.links_json = _json(s.get("links", ""), [])
        self.addrs_json = _json(s.get("addrs", ""), [])
        self.state: NetState = parse_state(
            self.links_json, self.addrs_json, _json(s.get("vlans", ""), []), parse_sysctls(s.get("sysctl", ""))
        )
        applied = _json(s.get("applied", ""), None)
        self.applied: dict[str, Any] | None = applied if isinstance(applied, dict) else None
        self.pending = s.get("pending", "none").strip() or "none"
        self.frr_test = s.get("frr_test")
        rc = s.get("frr_rc", "").strip()
        self.frr_rc = int(rc) if rc.lstrip("-").isdigit() else None
        self.frr_err = s.get("frr_err", "")

    def mgmt_addresses(self, ifname: str) -> list[str]:
        link = self.state.links.get(ifname)
        return list(link.addresses or ()) if link else []


def tar_bytes(files: Mapping[str, str | bytes], mode: int = 0o600) -> bytes:
    """An in-memory tar of ``{relative path: content}`` (owned by root, ``mode``)."""
    buf = io.BytesIO()
    now = time.time()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(data), mode, now, 0, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def untar_command(d: str, subdir: str = "") -> str:
    """Unpack the tar on stdin under ``d/subdir``; exits 90 when that fails."""
    target = f"{d}/{subdir}" if subdir else d
    return (
        f"umask 077; mkdir -p {q(target)} && tar -x --no-same-owner -m -f - -C {q(target)} "
        "|| { echo 'lintas: upload failed' >&2; exit 90; }"
    )


def merged_frr_command(d: str) -> str:
    """For a merge: the running config followed by the candidate snippet (frr-reload joins contexts)."""
    c = q(f"{d}/candidate")
    return (
        f"vtysh -c 'show running-config' | sed -e '/^Building configuration/d' -e '/^Current configuration:/d' "
        f"-e '/^end$/d' > {c}/merged.conf && cat {c}/frr.part >> {c}/merged.conf "
        "|| { echo 'lintas: merge with the running config failed' >&2; exit 91; }"
    )
