"""Parsing iputils ``ping`` output and ``show ip route json`` (FRR 8.4) into the driver's structures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lintas.workers.drivers.frr.getters import ipv4_routes, ping_result

PING_OK = """\
PING 10.250.16.44 (10.250.16.44) from 10.250.16.45 : 56(84) bytes of data.
64 bytes from 10.250.16.44: icmp_seq=1 ttl=64 time=0.052 ms
64 bytes from 10.250.16.44: icmp_seq=2 ttl=64 time=0.071 ms
64 bytes from 10.250.16.44: icmp_seq=3 ttl=64 time=0.066 ms

--- 10.250.16.44 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 404ms
rtt min/avg/max/mdev = 0.052/0.063/0.071/0.008 ms
"""

PING_DF_OK = """\
PING 10.250.1.12 (10.250.1.12) from 10.250.1.11 : 9188(9216) bytes of data.
9196 bytes from 10.250.1.12: icmp_seq=1 ttl=63 time=0.412 ms

--- 10.250.1.12 ping statistics ---
1 packets transmitted, 1 received, 0% packet loss, time 0ms
rtt min/avg/max/mdev = 0.412/0.412/0.412/0.000 ms
"""

PING_LOSS = """\
PING 10.250.1.99 (10.250.1.99) from 10.250.1.11 : 56(84) bytes of data.

--- 10.250.1.99 ping statistics ---
3 packets transmitted, 0 received, 100% packet loss, time 409ms

"""

PING_PARTIAL = """\
PING 10.250.16.46 (10.250.16.46) 56(84) bytes of data.
From 10.250.16.47 icmp_seq=1 Destination Host Unreachable
64 bytes from 10.250.16.46: icmp_seq=2 ttl=64 time=1.25 ms

--- 10.250.16.46 ping statistics ---
2 packets transmitted, 1 received, +1 errors, 50% packet loss, time 1001ms
rtt min/avg/max/mdev = 1.250/1.250/1.250/0.000 ms
"""

PING_DF_TOO_BIG = """\
PING 10.250.1.13 (10.250.1.13) from 10.250.1.11 : 9188(9216) bytes of data.
ping: local error: message too long, mtu=1500

--- 10.250.1.13 ping statistics ---
1 packets transmitted, 0 received, +1 errors, 100% packet loss, time 0ms

"""

PING_BIND = "ping: bind: Cannot assign requested address\n"
PING_UNREACHABLE = "ping: connect: Network is unreachable\n"


def test_success() -> None:
    r = ping_result(PING_OK, 0)
    assert set(r) == {"success"}
    s = r["success"]
    assert (s["probes_sent"], s["packet_loss"]) == (3, 0)
    assert (s["rtt_min"], s["rtt_avg"], s["rtt_max"], s["rtt_stddev"]) == (0.052, 0.063, 0.071, 0.008)


def test_success_replies_carry_the_bare_address_and_rtt() -> None:
    # napalm's PingResultDict: results[].ip_address is an address (no trailing ':' from "from X: icmp_seq")
    s = ping_result(PING_OK, 0)["success"]
    assert s["results"] == [
        {"ip_address": "10.250.16.44", "rtt": 0.052},
        {"ip_address": "10.250.16.44", "rtt": 0.071},
        {"ip_address": "10.250.16.44", "rtt": 0.066},
    ]


def test_df_success_of_a_jumbo_probe() -> None:
    s = ping_result(PING_DF_OK, 0)["success"]
    assert (s["probes_sent"], s["packet_loss"], s["rtt_avg"]) == (1, 0, 0.412)
    assert [x["rtt"] for x in s["results"]] == [0.412]


def test_total_loss_is_a_success_dict_with_every_probe_lost() -> None:
    s = ping_result(PING_LOSS, 1)["success"]
    assert (s["probes_sent"], s["packet_loss"]) == (3, 3)
    assert (s["rtt_min"], s["rtt_avg"], s["rtt_max"], s["rtt_stddev"]) == (0.0, 0.0, 0.0, 0.0)
    assert s["results"] == []


def test_partial_loss_with_errors_counts_only_replies() -> None:
    s = ping_result(PING_PARTIAL, 1)["success"]
    assert (s["probes_sent"], s["packet_loss"]) == (2, 1)
    assert [x["rtt"] for x in s["results"]] == [1.25]  # the "From ... Unreachable" line is no reply
    assert s["rtt_max"] == 1.25


def test_df_probe_larger_than_a_hop_mtu_is_lost() -> None:
    s = ping_result(PING_DF_TOO_BIG, 1)["success"]
    assert (s["probes_sent"], s["packet_loss"], s["results"]) == (1, 1, [])


@pytest.mark.parametrize(
    ("output", "error"),
    [
        (PING_BIND, "ping: bind: Cannot assign requested address"),
        (PING_UNREACHABLE, "ping: connect: Network is unreachable"),
        ("bash: line 1: ping: command not found\n", "bash: line 1: ping: command not found"),
    ],
)
def test_errors_without_statistics(output: str, error: str) -> None:
    assert ping_result(output, 2) == {"error": error}


def test_error_is_the_last_line() -> None:
    out = "PING 10.250.1.12 (10.250.1.12) from 10.250.1.11 : 56(84) bytes of data.\nping: sendmsg: No route to host\n"
    assert ping_result(out, 2) == {"error": "ping: sendmsg: No route to host"}


def test_empty_output_names_the_exit_code() -> None:
    assert ping_result("", 127) == {"error": "ping exited 127"}
    assert ping_result("  \n", 2) == {"error": "ping exited 2"}


def test_long_error_is_truncated() -> None:
    assert ping_result("x" * 1000, 2) == {"error": "x" * 300}


def test_busybox_summary_is_understood() -> None:
    out = (
        "PING 10.0.0.1 (10.0.0.1): 56 data bytes\n64 bytes from 10.0.0.1: seq=0 ttl=64 time=0.090 ms\n\n"
        "--- 10.0.0.1 ping statistics ---\n2 packets transmitted, 1 packets received, 50% packet loss\n"
        "round-trip min/avg/max = 0.090/0.090/0.090 ms\n"
    )
    s = ping_result(out, 1)["success"]
    assert (s["probes_sent"], s["packet_loss"]) == (2, 1)


# -- show ip route json (FRR 8.4) ------------------------------------------------------------------

ROUTES_JSON = """
{
  "10.250.0.1/32":[{"prefix":"10.250.0.1/32","prefixLen":32,"protocol":"bgp","vrfId":0,"vrfName":"default",
    "selected":true,"destSelected":true,"distance":20,"metric":0,"installed":true,"table":254,
    "internalStatus":16,"internalFlags":8,"internalNextHopNum":1,"internalNextHopActiveNum":1,
    "nexthopGroupId":38,"installedNexthopGroupId":38,"uptime":"00:04:12",
    "nexthops":[{"flags":3,"fib":true,"ip":"10.250.16.44","afi":"ipv4","interfaceIndex":5,
                 "interfaceName":"swp51","active":true,"weight":1}]}],
  "10.250.0.11/32":[{"prefix":"10.250.0.11/32","prefixLen":32,"protocol":"connected","vrfId":0,
    "vrfName":"default","selected":true,"destSelected":true,"distance":0,"metric":0,"installed":true,
    "table":254,"internalStatus":16,"internalFlags":8,"internalNextHopNum":1,"internalNextHopActiveNum":1,
    "nexthopGroupId":7,"installedNexthopGroupId":7,"uptime":"00:05:01",
    "nexthops":[{"flags":3,"fib":true,"directlyConnected":true,"interfaceIndex":1,"interfaceName":"lo",
                 "active":true}]}],
  "10.250.1.12/32":[{"prefix":"10.250.1.12/32","prefixLen":32,"protocol":"bgp","vrfId":0,"vrfName":"default",
    "selected":true,"destSelected":true,"distance":20,"metric":0,"installed":true,"table":254,
    "internalStatus":16,"internalFlags":8,"internalNextHopNum":2,"internalNextHopActiveNum":2,
    "nexthopGroupId":41,"installedNexthopGroupId":41,"uptime":"00:03:58",
    "nexthops":[{"flags":3,"fib":true,"ip":"10.250.16.46","afi":"ipv4","interfaceIndex":6,
                 "interfaceName":"swp52","active":true,"weight":1},
                {"flags":3,"fib":true,"ip":"10.250.16.44","afi":"ipv4","interfaceIndex":5,
                 "interfaceName":"swp51","active":true,"weight":1}]}],
  "10.250.1.13/32":[{"prefix":"10.250.1.13/32","prefixLen":32,"protocol":"bgp","vrfId":0,"vrfName":"default",
    "selected":true,"destSelected":true,"distance":20,"metric":0,"installed":true,"table":254,
    "internalStatus":16,"internalFlags":8,"internalNextHopNum":2,"internalNextHopActiveNum":1,
    "nexthopGroupId":44,"installedNexthopGroupId":44,"uptime":"00:00:07",
    "nexthops":[{"flags":3,"fib":true,"ip":"10.250.16.44","afi":"ipv4","interfaceIndex":5,
                 "interfaceName":"swp51","active":true,"weight":1},
                {"flags":0,"ip":"10.250.16.46","afi":"ipv4","interfaceIndex":6,"interfaceName":"swp52",
                 "weight":1}]}],
  "10.250.16.44/31":[{"prefix":"10.250.16.44/31","prefixLen":31,"protocol":"bgp","vrfId":0,
    "vrfName":"default","distance":20,"metric":0,"table":254,"internalStatus":0,"internalFlags":8,
    "internalNextHopNum":1,"internalNextHopActiveNum":1,"nexthopGroupId":38,"uptime":"00:04:12",
    "nexthops":[{"flags":1,"ip":"10.250.16.44","afi":"ipv4","interfaceIndex":5,"interfaceName":"swp51",
                 "active":true,"weight":1}]},
    {"prefix":"10.250.16.44/31","prefixLen":31,"protocol":"connected","vrfId":0,"vrfName":"default",
    "selected":true,"destSelected":true,"distance":0,"metric":0,"installed":true,"table":254,
    "internalStatus":16,"internalFlags":8,"internalNextHopNum":1,"internalNextHopActiveNum":1,
    "nexthopGroupId":12,"installedNexthopGroupId":12,"uptime":"00:05:01",
    "nexthops":[{"flags":3,"fib":true,"directlyConnected":true,"interfaceIndex":5,"interfaceName":"swp51",
                 "active":true}]}],
  "10.250.1.99/32":[{"prefix":"10.250.1.99/32","prefixLen":32,"protocol":"bgp","vrfId":0,"vrfName":"default",
    "distance":20,"metric":0,"table":254,"internalStatus":0,"internalFlags":0,"internalNextHopNum":1,
    "internalNextHopActiveNum":0,"uptime":"00:00:02",
    "nexthops":[{"flags":0,"ip":"10.250.16.46","afi":"ipv4","interfaceIndex":6,"interfaceName":"swp52",
                 "weight":1}]}]
}
"""


@pytest.fixture(scope="module")
def routes() -> dict[str, dict[str, Any]]:
    return ipv4_routes(json.loads(ROUTES_JSON))


def test_every_prefix_is_reported(routes: dict[str, dict[str, Any]]) -> None:
    assert sorted(routes) == sorted(json.loads(ROUTES_JSON))
    assert all(set(r) == {"protocol", "selected", "installed", "nexthops"} for r in routes.values())


def test_bgp_route_via_one_spine(routes: dict[str, dict[str, Any]]) -> None:
    assert routes["10.250.0.1/32"] == {
        "protocol": "bgp",
        "selected": True,
        "installed": True,
        "nexthops": ["10.250.16.44"],
    }


def test_connected_route_names_its_interface(routes: dict[str, dict[str, Any]]) -> None:
    assert routes["10.250.0.11/32"] == {
        "protocol": "connected",
        "selected": True,
        "installed": True,
        "nexthops": ["lo"],
    }


def test_multipath_nexthops_are_all_listed_sorted(routes: dict[str, dict[str, Any]]) -> None:
    assert routes["10.250.1.12/32"]["nexthops"] == ["10.250.16.44", "10.250.16.46"]


def test_inactive_nexthop_is_left_out(routes: dict[str, dict[str, Any]]) -> None:
    assert routes["10.250.1.13/32"] == {
        "protocol": "bgp",
        "selected": True,
        "installed": True,
        "nexthops": ["10.250.16.44"],
    }


def test_the_selected_entry_wins_over_an_earlier_unselected_one(routes: dict[str, dict[str, Any]]) -> None:
    assert routes["10.250.16.44/31"] == {
        "protocol": "connected",
        "selected": True,
        "installed": True,
        "nexthops": ["swp51"],
    }


def test_route_with_no_selected_entry_is_reported_unselected(routes: dict[str, dict[str, Any]]) -> None:
    assert routes["10.250.1.99/32"] == {"protocol": "bgp", "selected": False, "installed": False, "nexthops": []}


def test_empty_and_malformed_tables() -> None:
    assert ipv4_routes({}) == {}
    assert ipv4_routes({"10.0.0.0/8": "garbage", "10.1.0.0/16": []}) == {
        "10.1.0.0/16": {"protocol": "", "selected": False, "installed": False, "nexthops": []}
    }
