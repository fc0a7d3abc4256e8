"""A host's uplink probes (workers/hosts/probes.py; computed by workers/deploy/common.uplink_probes).

The probe script runs for real with iputils' ping, in a network namespace of its own holding only
``lo`` (nothing can leave it): a path that answers, one whose MTU is short (``lo`` at 1500, a
9000-byte probe with DF), one with no route. Over SSH on the lab's hosts: tests/deploy/test_hosts_e2e.py."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from lintas.workers.deploy.common import uplink_probes
from lintas.workers.hosts.probes import ProbeAnswer, UplinkProbe, parse, script, uplink_checks
from tests.render import model_of, template_texts


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    name = f"lp-probe-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "lo", "mtu", "1500"]):
            subprocess.run(["ip", "netns", "exec", name, *argv], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def probe(destination: str, size: int, what: str) -> UplinkProbe:
    return UplinkProbe(source="127.0.0.1", destination=destination, size=size, what=what)


def test_the_script_tells_an_answer_a_short_mtu_and_a_cut_path_apart(netns: str) -> None:
    probes = [
        probe("127.0.0.1", 1500, "fits"),
        probe("127.0.0.1", 9000, "too big for lo"),
        probe("10.20.0.99", 1500, "no route"),  # a lab address; nothing leaves this namespace anyway
    ]
    out = subprocess.run(
        ["ip", "netns", "exec", netns, "sh", "-c", script(probes, wait_s=1)], capture_output=True, text=True, timeout=30
    )
    answers = parse(out.stdout, len(probes))
    assert answers == [
        ProbeAnswer(full=True, small=None),
        ProbeAnswer(full=False, small=True),
        ProbeAnswer(full=False, small=False),
    ], out
    checks = uplink_checks("h1", probes, answers)
    assert [c.passed for c in checks] == [True, False, False]
    assert [c.observed for c in checks] == [
        "answered at 1500 bytes",
        "no answer at 9000 bytes with DF; answers small pings: the path's MTU is short",
        "no answer (not even a small ping): the path is cut",
    ]
    assert checks[1].subject == "127.0.0.1 → 127.0.0.1 (too big for lo)" and checks[1].check == "uplink"
    assert checks[1].expected == "answers 9000-byte pings with DF"


def test_the_payload_leaves_room_for_the_headers_and_the_flags_are_dont_fragment() -> None:
    text = script([probe("10.20.0.1", 9000, "gw")])
    assert "-M do -s 8972 -I 127.0.0.1 10.20.0.1" in text  # 9000 - 20 (IPv4) - 8 (ICMP)
    assert UplinkProbe(source="fd00::11", destination="fd00::1", size=9000, what="gw").payload == 8952
    with pytest.raises(ValueError):
        script([probe("10.20.0.1; reboot", 9000, "gw")])  # never a shell word from input


def test_unparsable_or_missing_lines_are_probes_that_did_not_run() -> None:
    answers = parse("0 0 -\ngarbage\n7 0 -\n2 1 0\n", 3)
    assert answers == [ProbeAnswer(full=True, small=None), None, ProbeAnswer(full=False, small=True)]
    assert uplink_checks("h1", [probe("10.20.0.1", 9000, "gw")], [None])[0].observed == "the probe did not run"


def test_a_hosts_probes_are_its_gateway_and_its_plain_tunnel_peers_that_are_up() -> None:
    texts = template_texts()
    assert uplink_probes(model_of(texts), "kvm-uat-01", {"kvm-uat-01", "osc-01"}) == [
        UplinkProbe(source="10.20.0.11", destination="10.20.0.1", size=9000, what="gateway of infra-tunnel on leaf-01")
    ]  # osc-01 is an OVN chassis: ovn-controller's tunnels, not kvm-uat-01's peers
    hosts = texts["hosts/hosts.yaml"]
    hosts, n = re.subn(
        r"    ovn:\n(?:      .*\n)+?(?=    capacity:)",
        "    tunnels:\n      type: geneve\n      key: flow\n      csum: true\n      peers: all\n",
        hosts,
    )
    assert n == 1
    texts["hosts/hosts.yaml"] = hosts.replace(
        "      mtu: 9000\n      tunnel_network: infra-tunnel\n      tunnel_ip: 10.20.0.21",
        "      mtu: 8500\n      tunnel_network: infra-tunnel\n      tunnel_ip: 10.20.0.21",
    )
    m = model_of(texts)
    got = uplink_probes(m, "kvm-uat-01", {"kvm-uat-01", "osc-01"})
    assert [(p.destination, p.size, p.what) for p in got] == [
        ("10.20.0.1", 9000, "gateway of infra-tunnel on leaf-01"),
        ("10.20.0.21", 8500, "tunnel peer osc-01"),  # the smaller uplink on the path
    ]
    assert [p.what for p in uplink_probes(m, "kvm-uat-01", {"kvm-uat-01"})] == ["gateway of infra-tunnel on leaf-01"]
    assert [(p.destination, p.size) for p in uplink_probes(m, "osc-01", {"kvm-uat-01"})] == [
        ("10.20.0.1", 8500),
        ("10.20.0.11", 8500),
    ]
