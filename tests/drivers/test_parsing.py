"""Parsing what FRR and iproute2 print (samples recorded from the lab's FRR 8.4), and the on-device scripts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from lintas.workers.drivers.frr import getters
from lintas.workers.drivers.frr.frr_diff import parse_reload_test, reload_failed_reason
from lintas.workers.drivers.frr.linux_apply import Op
from lintas.workers.drivers.frr.remote import Gathered, mark, parse_sections
from lintas.workers.drivers.frr.revert import TIMER_SH, apply_script, restore_script

RELOAD_TEST = """
Lines To Delete
===============
no log file /var/log/frr/frr.log informational
ip forwarding

Lines To Add
============
log syslog informational
vrf INFRA
vrf INFRA
 vni 50000
vrf INFRA
 exit-vrf
router bgp 65111
router bgp 65111
 neighbor UNDERLAY password S3cr3t
router bgp 65111
 address-family l2vpn evpn
router bgp 65111
 address-family l2vpn evpn
  vni 10010
router bgp 65111
 address-family l2vpn evpn
  vni 10010
   route-target import 65000:10010
"""


def test_reload_test_output_becomes_one_line_per_change() -> None:
    assert parse_reload_test(RELOAD_TEST) == [
        "- no log file /var/log/frr/frr.log informational",
        "- ip forwarding",
        "+ log syslog informational",
        "+ vrf INFRA > vni 50000",
        "+ router bgp 65111 > neighbor UNDERLAY password S3cr3t",
        "+ router bgp 65111 > address-family l2vpn evpn > vni 10010 > route-target import 65000:10010",
    ]
    assert parse_reload_test("\nLines To Delete\n===============\n\nLines To Add\n============\n") == []
    err = (
        "2026 INFO: Loading\n2026 \x1b[91m  ERROR\x1b[0m: vtysh failed to process new configuration:\n"
        "b'line 2: % Unknown command:  neighbr bogus\\n\\n'\n2026 INFO: done\n"
    )
    reason = reload_failed_reason(err)
    assert "Unknown command:  neighbr bogus" in reason and "INFO" not in reason and "\x1b" not in reason


def test_sections_survive_output_without_a_final_newline() -> None:
    script = f"{mark('a')}\nprintf '{{\"x\": 1}}'\n{mark('b')}\necho two\n{mark('end')}\n"
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert parse_sections(out) == {"a": '{"x": 1}', "b": "two", "end": ""}


def test_gathered_state_report() -> None:
    text = "\n".join(
        [
            "@@caps",
            "vxlan",
            "bootid 6.1.0",
            "@@host",
            "leaf-01",
            "6.1.0",
            "@@links",
            '[{"ifname": "eth0", "mtu": 1500, "flags": ["UP"], "link_type": "ether"}]',
            "@@addrs",
            '[{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.255.0.21", "prefixlen": 24}]}]',
            "@@vlans",
            "[]",
            "@@sysctl",
            "net.ipv4.ip_forward = 1",
            "@@applied",
            "",
            "@@pending",
            "none",
            "@@frr_test",
            "Lines To Add",
            "============",
            "hostname x",
            "@@frr_rc",
            "0",
            "@@frr_err",
            "",
            "@@end",
            "",
        ]
    )
    g = Gathered(text)
    assert (g.hostname, g.kernel, g.caps.mode, g.caps.vxlan, g.caps.vrf) == (
        "leaf-01",
        "6.1.0",
        "traditional",
        True,
        False,
    )
    assert g.mgmt_addresses("eth0") == ["10.255.0.21/24"] and g.state.sysctls == {"net.ipv4.ip_forward": "1"}
    assert g.applied is None and g.pending == "none" and g.frr_rc == 0
    assert parse_reload_test(g.frr_test or "") == ["+ hostname x"]


def test_bgp_and_evpn_getters_normalise_vtysh_json() -> None:
    summary = {
        "default": {
            "ipv4Unicast": {"routerId": "10.250.0.11", "peers": {"10.250.16.44": {"state": "Established"}}},
            "l2VpnEvpn": {
                "routerId": "10.250.0.11",
                "peers": {
                    "10.250.16.44": {
                        "hostname": "spine-01",
                        "remoteAs": 65000,
                        "localAs": 65111,
                        "peerUptimeMsec": 129000,
                        "pfxRcd": 5,
                        "pfxSnt": 3,
                        "state": "Established",
                        "desc": "spine-01",
                    },
                    "10.250.16.46": {"remoteAs": 65000, "localAs": 65111, "pfxRcd": 0, "pfxSnt": 0, "state": "Connect"},
                },
            },
        },
        "INFRA": {"ipv4Unicast": {"routerId": "10.250.0.11", "peers": {}}},
    }
    neighbors = {
        "default": {
            "vrfId": 0,
            "vrfName": "default",
            "10.250.16.44": {
                "remoteAs": 65000,
                "localAs": 65111,
                "nbrDesc": "spine-01",
                "remoteRouterId": "10.250.0.1",
                "localRouterId": "10.250.0.11",
                "bgpState": "Established",
                "bgpTimerUpMsec": 129000,
                "addressFamilyInfo": {
                    "ipv4Unicast": {"acceptedPrefixCounter": 3, "sentPrefixCounter": 5},
                    "l2VpnEvpn": {"acceptedPrefixCounter": 1, "sentPrefixCounter": 2},
                },
            },
        }
    }
    bgp = getters.bgp_neighbors(neighbors, summary)
    assert set(bgp) == {"global", "INFRA"} and bgp["INFRA"]["peers"] == {}
    peer = bgp["global"]["peers"]["10.250.16.44"]
    assert peer["is_up"] and peer["remote_as"] == 65000 and peer["remote_id"] == "10.250.0.1"
    assert peer["uptime"] == 129 and peer["description"] == "spine-01"
    assert peer["address_family"] == {
        "ipv4": {"received_prefixes": 3, "accepted_prefixes": 3, "sent_prefixes": 5},
        "l2vpn_evpn": {"received_prefixes": 1, "accepted_prefixes": 1, "sent_prefixes": 2},
    }
    evpn = getters.evpn_peers(summary)
    assert evpn["10.250.16.44"]["is_up"] and evpn["10.250.16.44"]["prefixes_received"] == 5
    assert evpn["10.250.16.46"]["state"] == "Connect" and not evpn["10.250.16.46"]["is_up"]

    vnis = {
        "10010": {
            "vni": 10010,
            "type": "L2",
            "vxlanIf": "vni10010",
            "numMacs": 0,
            "tenantVrf": "default",
            "remoteVteps": ["10.250.1.14", "10.250.1.12", "10.250.1.13"],
        },
        "50000": {"vni": 50000, "vxlanIf": "None", "numRemoteVteps": "n/a", "type": "L3", "tenantVrf": "Unknown"},
    }
    detail = [
        {
            "vni": 10010,
            "type": "L2",
            "vxlanInterface": "vni10010",
            "sviInterface": "br10010",
            "vtepIp": "10.250.1.11",
            "numRemoteVteps": ["10.250.1.12"],
        },
        {
            "vni": 50000,
            "type": "L3",
            "localVtepIp": "0.0.0.0",
            "vxlanIntf": "None",
            "sviIntf": "None",
            "state": "Down",
            "vrf": "Unknown",
        },
    ]
    links = [{"ifname": "vni10010", "master": "br10010"}]
    out = getters.evpn_vnis(vnis, detail, getters.with_pvids(links, []), {"10010": 10})
    assert out[10010] == {
        "type": "L2",
        "vxlan_interface": "vni10010",
        "svi": "br10010",
        "bridge": "br10010",
        "vlan": 10,
        "vrf": "default",
        "state": "Up",
        "local_vtep": "10.250.1.11",
        "remote_vteps": ["10.250.1.12", "10.250.1.13", "10.250.1.14"],
        "num_macs": 0,
    }
    assert out[50000]["type"] == "L3" and out[50000]["state"] == "Down" and out[50000]["vxlan_interface"] is None

    macs = getters.evpn_macs(
        {
            "numMacs": 2,
            "macs": {
                "A6:F8:F1:A0:2A:1C": {"type": "local", "intf": "swp1"},
                "76:20:f0:0c:f7:70": {"type": "remote", "remoteVtep": "10.250.1.13"},
            },
        }
    )
    assert macs == {
        "a6:f8:f1:a0:2a:1c": {"type": "local", "interface": "swp1", "remote_vtep": None, "vlan": None},
        "76:20:f0:0c:f7:70": {"type": "remote", "interface": None, "remote_vtep": "10.250.1.13", "vlan": None},
    }


def test_interface_getters() -> None:
    links = [
        {
            "ifname": "swp51",
            "flags": ["BROADCAST", "UP", "LOWER_UP"],
            "mtu": 9216,
            "operstate": "UP",
            "address": "f6:0d:c0:03:9b:2c",
            "ifalias": "P2P_spine-01_swp1",
        },
        {
            "ifname": "lo",
            "flags": ["LOOPBACK", "UP", "LOWER_UP"],
            "mtu": 65536,
            "operstate": "UNKNOWN",
            "address": "00:00:00:00:00:00",
        },
        {"ifname": "br10999", "flags": ["BROADCAST"], "mtu": 1500, "operstate": "DOWN", "address": "aa:bb:cc:dd:ee:ff"},
    ]
    ifs = getters.interfaces(links, {"swp51": 10000})
    assert ifs["swp51"] == {
        "is_up": True,
        "is_enabled": True,
        "description": "P2P_spine-01_swp1",
        "last_flapped": -1.0,
        "mtu": 9216,
        "speed": 10000.0,
        "mac_address": "f6:0d:c0:03:9b:2c",
    }
    assert ifs["lo"]["is_up"] and not ifs["br10999"]["is_enabled"] and ifs["br10999"]["speed"] == -1.0
    ips = getters.interfaces_ip(
        [
            {
                "ifname": "lo",
                "addr_info": [
                    {"family": "inet", "local": "10.250.0.11", "prefixlen": 32},
                    {"family": "inet6", "local": "::1", "prefixlen": 128},
                ],
            }
        ]
    )
    assert ips == {"lo": {"ipv4": {"10.250.0.11": {"prefix_length": 32}}, "ipv6": {"::1": {"prefix_length": 128}}}}


def test_device_scripts_are_valid_shell(tmp_path: Path) -> None:
    ops = [
        Op(("ip", "link", "add", "br10010", "type", "bridge"), "+ br10010: create 'bridge'", "br10010"),
        Op(("ip", "link", "set", "dev", "swp1", "alias", "it's; rm -rf /"), "~ swp1: description", "swp1"),
    ]
    scripts = {
        "timer.sh": TIMER_SH,
        "apply.sh": apply_script("/etc/frr/lintas", ops, frr_file="/etc/frr/lintas/candidate/frr.conf", title="t"),
        "apply-linux-only.sh": apply_script("/etc/frr/lintas", ops, frr_file=None, title="t"),
        "restore.sh": restore_script("/etc/frr/lintas", ops, checkpoint="c1"),
    }
    for name, text in scripts.items():
        f = tmp_path / name
        f.write_text(text)
        res = subprocess.run(["sh", "-n", str(f)], capture_output=True, text=True)
        assert res.returncode == 0, (name, res.stderr)
    assert "step ip link set dev swp1 alias 'it'\"'\"'s; rm -rf /'" in scripts["apply.sh"]
    assert "frr-reload.py --reload" not in scripts["apply-linux-only.sh"]
    assert scripts["restore.sh"].index("try ip link add") < scripts["restore.sh"].index("frr-reload.py")
