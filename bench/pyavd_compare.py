"""Lintas vs pyavd (Arista AVD) on the same L3LS EVPN fabric, EOS output (issue 3).

Fabric: 2 spines + N leaves, 20 SVIs/VNIs per leaf (``generate_fabric``), every device on
``platform: eos``; the same fabric is given to pyavd as ``eos_designs`` inputs
(:mod:`bench.pyavd_fabric`). Target: our per-device time >= 20x faster than pyavd's.

    .venv/bin/python -m bench.pyavd_compare [--leaves 64 256] [--shapes pairs shared] [--save-configs DIR]

pyavd is a benchmark-only dependency (not in pyproject): ``pip install pyavd==6.4.0``.

Each (side, N) is measured in a fresh child process (same interpreter, same machine, one
after the other, never in parallel), so neither side pays for the other's heap or GC, and
each child reports its own peak RSS. Inside a child, imports and a warm-up on a 2-leaf
fabric (one-time costs: template compilation, schema store) are timed separately from the
measured run.

* ours: ``load_model`` (YAML parse + schema + derivation + semantic checks) then
  ``render_device`` for every switch with one ``Renderer``;
* pyavd, the documented pipeline: ``validate_inputs`` per device (then loaded once into
  ``AVDDesign``, as ``get_avd_facts`` asks), ``get_avd_facts`` once for the fabric, then
  per device ``get_device_structured_config``, ``validate_structured_config`` and
  ``get_device_config``. AVD inputs are built in memory from the model beforehand
  (untimed; Ansible would also read group_vars YAML). pyavd runs with Python's default GC.

Two fabric shapes (``--shapes``): ``pairs`` is ``generate_fabric`` as is (each leaf pair
carries its own 20 networks: 640 networks at N=64, 2,560 at N=256); ``shared`` puts the
same 20 networks on every leaf (the classic AVD example). Every leaf has 20 SVIs/VNIs in
4 VRFs either way; AVD's per-device cost grows with the fabric-wide tenant size.

Comparability: config lines per device (all, and without ``!`` lines) for a leaf and a
spine on each side, and per-device feature counters (VLANs, SVIs/anycast gateways, VXLAN
VLAN->VNI and VRF->VNI maps, VRFs, fabric interfaces, loopbacks, underlay/EVPN BGP
neighbors, MAC-VRF and IP-VRF route targets, BFD multihop, ...) compared on every device.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import re
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import report, workdir

PYAVD_VERSION = "6.4.0"
PYAVD_MISSING = (
    f"pyavd is not installed in this environment. It is a benchmark-only dependency; install it with:\n"
    f"    pip install pyavd=={PYAVD_VERSION}\n"
    f"(into the project venv: .venv/bin/pip install pyavd=={PYAVD_VERSION})"
)


# -- the fabric ----------------------------------------------------------------------------


SHAPES = ("pairs", "shared")


def eos_repo(n_leaves: int, n_spines: int, vnis: int, shape: str = "pairs") -> dict[str, str]:
    """The generated repo with every switch on EOS and ports named EthernetN (as tests' ``as_eos``).

    ``pairs``: ``generate_fabric`` as is: each pair of leaves carries its own ``vnis``
    networks (``vnis`` x N / 2 networks in the fabric). ``shared``: only the first ``vnis``
    networks, carried by every leaf (``leaves: all``), the classic AVD example shape.
    """
    import yaml  # type: ignore[import-untyped,unused-ignore]

    from lintas.workers.model.generate import generate_fabric

    files = generate_fabric(n_leaves, n_spines=n_spines, vnis_per_leaf=vnis)
    if shape == "shared":
        tenants = yaml.safe_load(files["fabric/tenants.yaml"])
        tenants["networks"] = [{**net, "leaves": "all"} for net in tenants["networks"][:vnis]]
        files["fabric/tenants.yaml"] = yaml.safe_dump(tenants, sort_keys=False)
    for rel in ("fabric/devices.yaml", "fabric/links.yaml", "hosts/hosts.yaml"):
        files[rel] = files[rel].replace("swp", "Ethernet")
    files["fabric/devices.yaml"] = files["fabric/devices.yaml"].replace("platform: frr", "platform: eos")
    return files


def write_repo(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


# -- config metrics ------------------------------------------------------------------------

_COUNTERS: dict[str, re.Pattern[str]] = {
    "vlans": re.compile(r"^vlan \d+$"),
    "vrf_instances": re.compile(r"^vrf instance \S+$"),
    "ethernet_interfaces": re.compile(r"^interface Ethernet\S+$"),
    "routed_ports_mtu_9216": re.compile(r"^   mtu 9216$"),
    "loopbacks": re.compile(r"^interface Loopback\d+$"),
    "svis": re.compile(r"^interface Vlan\d+$"),
    "anycast_gateways": re.compile(r"^   ip address virtual \S+$"),
    "vxlan_vlan_vni": re.compile(r"^   vxlan vlan \d+ vni \d+$"),
    "vxlan_vrf_vni": re.compile(r"^   vxlan vrf \S+ vni \d+$"),
    "vxlan_source_loopback1": re.compile(r"^   vxlan source-interface Loopback1$"),
    "anycast_mac": re.compile(r"^ip virtual-router mac-address \S+$"),
    "ip_routing_vrf": re.compile(r"^ip routing vrf \S+$"),
    "mgmt_default_route": re.compile(r"^ip route vrf \S+ 0\.0\.0\.0/0 \S+$"),
    "bfd_multihop": re.compile(r"^   multihop interval 300 min-rx 300 multiplier 3$"),
    "bgp_underlay_neighbors": re.compile(r"^   neighbor \S+ peer group IPv4-UNDERLAY-PEERS$"),
    "bgp_evpn_neighbors": re.compile(r"^   neighbor \S+ peer group EVPN-OVERLAY-PEERS$"),
    "evpn_next_hop_unchanged": re.compile(r"^   neighbor EVPN-OVERLAY-PEERS next-hop-unchanged$"),
    "evpn_bfd": re.compile(r"^   neighbor EVPN-OVERLAY-PEERS bfd$"),
    "evpn_multihop_3": re.compile(r"^   neighbor EVPN-OVERLAY-PEERS ebgp-multihop 3$"),
    "evpn_update_source_lo0": re.compile(r"^   neighbor EVPN-OVERLAY-PEERS update-source Loopback0$"),
    "bgp_peer_group_passwords": re.compile(r"^   neighbor \S+-PEERS password .+$"),
    "redistribute_connected_rm": re.compile(r"^   redistribute connected route-map RM-CONN-2-BGP$"),
    "maximum_paths_4": re.compile(r"^   maximum-paths 4 ecmp 4$"),
    "evpn_af_activate": re.compile(r"^      neighbor EVPN-OVERLAY-PEERS activate$"),
    "mac_vrf_rd": re.compile(r"^      rd \S+:\d+$"),
    "mac_vrf_rt_both": re.compile(r"^      route-target both \d+:\d+$"),
    "mac_vrf_redistribute_learned": re.compile(r"^      redistribute learned$"),
    "ip_vrf_rt_import_evpn": re.compile(r"^      route-target import evpn \d+:\d+$"),
    "ip_vrf_rt_export_evpn": re.compile(r"^      route-target export evpn \d+:\d+$"),
    "ip_vrf_redistribute_connected": re.compile(r"^      redistribute connected$"),
    "eapi_https": re.compile(r"^management api http-commands$"),
}
# lines whose exact text must be the same on both sides: VLANs, VNIs, VRFs, gateways, ASNs,
# loopback/VTEP addresses (pools 10.200/10.201 of generate_fabric), route targets
_SAME_TEXT = re.compile(
    r"^(vlan \d+|   name \S+|vrf instance \S+|interface (Vlan|Loopback)\d+|   ip address virtual \S+|   vrf \S+"
    r"|   vxlan (vlan|vrf) \S+ vni \d+|ip virtual-router mac-address \S+|ip routing vrf \S+|router bgp \d+"
    r"|   router-id \S+|   neighbor \S+ remote-as \d+|      route-target (both|import evpn|export evpn) \S+"
    r"|   ip address 10\.20[01]\.\S+|spanning-tree .+)$"
)


def line_counts(text: str) -> dict[str, int]:
    lines = text.splitlines()
    return {"lines": len(lines), "lines_without_bang": sum(1 for x in lines if x.strip() != "!")}


# underlay /31 peers: AVD numbers the p2p pool from (id - 1), the model from id (no AVD knob)
_P2P_PEER = re.compile(r"^   neighbor (?!10\.20[01]\.)\S+ remote-as ")


def features(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    counts = {k: sum(1 for x in lines if rx.match(x)) for k, rx in _COUNTERS.items()}
    same = sorted(_P2P_PEER.sub("   neighbor <p2p> remote-as ", x) for x in lines if _SAME_TEXT.match(x))
    return {"counts": counts, "same_text": same}


def config_stats(configs: dict[str, str], roles: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role in ("leaf", "spine"):
        names = [n for n in configs if roles[n] == role]
        per = [line_counts(configs[n]) for n in names]
        out[role] = {
            "devices": len(names),
            "mean_lines": round(sum(p["lines"] for p in per) / len(per), 1),
            "mean_lines_without_bang": round(sum(p["lines_without_bang"] for p in per) / len(per), 1),
        }
    leaf, spine = examples(roles)
    out["example"] = {leaf: line_counts(configs[leaf]), spine: line_counts(configs[spine])}
    return out


def examples(roles: dict[str, str]) -> tuple[str, str]:
    """The first leaf and the first spine (``leaf-01`` or ``leaf-001``, by fabric size)."""
    return min(n for n, r in roles.items() if r == "leaf"), min(n for n, r in roles.items() if r == "spine")


# -- children: one side, one fabric size ---------------------------------------------------


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _ours_once(files: dict[str, str]) -> tuple[dict[str, float], dict[str, str], dict[str, str]]:
    from lintas.workers.model import load_model
    from lintas.workers.render.env import Renderer
    from lintas.workers.render.network import render_device

    with workdir() as d:
        write_repo(d, files)
        gc.collect()
        t0 = time.perf_counter()
        model = load_model(d)
        t1 = time.perf_counter()
        renderer = Renderer(d)
        configs = {name: render_device(model, name, renderer)["running-config"] for name in model.devices}
        t2 = time.perf_counter()
    roles = {n: ("leaf" if dev.is_leaf else "spine") for n, dev in model.devices.items()}
    return {"load_s": t1 - t0, "render_s": t2 - t1}, configs, roles


def child_ours(n: int, spines: int, vnis: int, shape: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    import lintas.workers.model  # noqa: F401
    import lintas.workers.render.network  # noqa: F401

    imports_s = time.perf_counter() - t0
    warm, _, _ = _ours_once(eos_repo(2, spines, vnis, shape))
    timing, configs, roles = _ours_once(eos_repo(n, spines, vnis, shape))
    return {"imports_s": imports_s, "warmup_s": sum(warm.values()), **timing, "configs": configs, "roles": roles}


def _avd_inputs_for(files: dict[str, str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    from bench.pyavd_fabric import avd_inputs
    from lintas.workers.model import load_model

    with workdir() as d:
        write_repo(d, files)
        model = load_model(d)
    roles = {n: ("leaf" if dev.is_leaf else "spine") for n, dev in model.devices.items()}
    return avd_inputs(model), roles


def _pyavd_once(inputs: dict[str, dict[str, Any]]) -> tuple[dict[str, float], dict[str, str]]:
    import pyavd  # type: ignore[import-untyped,unused-ignore]
    from pyavd.api.schemas import AVDDesign  # type: ignore[import-untyped,unused-ignore]

    gc.collect()
    t0 = time.perf_counter()
    validated: dict[str, Any] = {}
    for host, data in inputs.items():
        res = pyavd.validate_inputs(data)
        if res.validated_data is None or res.validation_result.violations:
            msgs = [f"{'.'.join(map(str, v.path))}: {v.message}" for v in res.validation_result.violations]
            raise SystemExit(f"pyavd input validation failed for {host}: {msgs[:5]}")
        validated[host] = res.validated_data
    t1 = time.perf_counter()
    # get_avd_facts wants the inputs "validated and loaded into instances of the AVDDesign
    # class first"; given dicts, it and get_device_structured_config would each load them
    # again (a few % slower end to end at N=256 in our runs).
    for host in validated:
        validated[host] = AVDDesign._from_dict(validated[host])
    t_load = time.perf_counter()
    facts = pyavd.get_avd_facts(validated)
    t2 = time.perf_counter()
    t_sc = t_vsc = t_cfg = 0.0
    configs: dict[str, str] = {}
    for host, data in validated.items():
        a = time.perf_counter()
        sc = pyavd.get_device_structured_config(host, data, facts)
        b = time.perf_counter()
        vres = pyavd.validate_structured_config(sc._as_dict())
        if vres.validated_data is None or vres.validation_result.violations:
            msgs = [f"{'.'.join(map(str, v.path))}: {v.message}" for v in vres.validation_result.violations]
            raise SystemExit(f"pyavd structured config validation failed for {host}: {msgs[:5]}")
        c = time.perf_counter()
        configs[host] = pyavd.get_device_config(vres.validated_data)
        d = time.perf_counter()
        t_sc, t_vsc, t_cfg = t_sc + (b - a), t_vsc + (c - b), t_cfg + (d - c)
    timing = {
        "validate_inputs_s": t1 - t0,
        "load_inputs_s": t_load - t1,
        "facts_s": t2 - t_load,
        "structured_config_s": t_sc,
        "validate_structured_config_s": t_vsc,
        "config_s": t_cfg,
    }
    return timing, configs


def child_pyavd(n: int, spines: int, vnis: int, shape: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    import pyavd  # type: ignore[import-untyped,unused-ignore]

    imports_s = time.perf_counter() - t0
    warm_inputs, _ = _avd_inputs_for(eos_repo(2, spines, vnis, shape))
    warm, _ = _pyavd_once(warm_inputs)
    inputs, roles = _avd_inputs_for(eos_repo(n, spines, vnis, shape))
    gc.collect()
    timing, configs = _pyavd_once(inputs)
    return {
        "pyavd_version": pyavd.__version__,
        "imports_s": imports_s,
        "warmup_s": sum(warm.values()),
        **timing,
        "configs": configs,
        "roles": roles,
    }


# -- parent ---------------------------------------------------------------------------------


def run_child(side: str, n: int, spines: int, vnis: int, shape: str) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "bench.pyavd_compare",
        "--child",
        side,
        "--n",
        str(n),
        "--spines",
        str(spines),
        "--vnis",
        str(vnis),
        "--shapes",
        shape,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"child {side} N={n} failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def compare_features(ours: dict[str, str], avd: dict[str, str], roles: dict[str, str]) -> dict[str, Any]:
    leaf, spine = examples(roles)
    equal, mismatches = 0, []
    for name in sorted(ours):
        fo, fa = features(ours[name]), features(avd.get(name, ""))
        if fo == fa:
            equal += 1
            continue
        diff = {k: [fo["counts"][k], fa["counts"][k]] for k in fo["counts"] if fo["counts"][k] != fa["counts"][k]}
        co, ca = Counter(fo["same_text"]), Counter(fa["same_text"])
        diff_text = {"only_ours": sorted((co - ca).elements())[:5], "only_pyavd": sorted((ca - co).elements())[:5]}
        mismatches.append({"device": name, "counts[ours,pyavd]": diff, **diff_text})
    return {
        "devices_compared": len(ours),
        "devices_with_identical_features": equal,
        "feature_counters": sorted(_COUNTERS),
        f"{leaf} features (ours)": features(ours[leaf])["counts"],
        f"{spine} features (ours)": features(ours[spine])["counts"],
        "mismatches": mismatches[:5],
    }


def one_size(n: int, spines: int, vnis: int, shape: str, save: Path | None) -> dict[str, Any]:
    ours = run_child("ours", n, spines, vnis, shape)
    avd = run_child("pyavd", n, spines, vnis, shape)
    devices = len(ours["configs"])
    if set(avd["configs"]) != set(ours["configs"]):
        raise SystemExit(f"device sets differ: {sorted(set(avd['configs']) ^ set(ours['configs']))[:5]}")
    ours_e2e = ours["load_s"] + ours["render_s"]
    avd_render = avd["structured_config_s"] + avd["validate_structured_config_s"] + avd["config_s"]
    avd_e2e = avd["validate_inputs_s"] + avd["load_inputs_s"] + avd["facts_s"] + avd_render

    def ms(seconds: float) -> float:
        return round(seconds * 1000 / devices, 3)

    if save is not None:
        for side, res in (("ours", ours), ("pyavd", avd)):
            for name in examples(res["roles"]):
                p = save / f"{shape}-n{n}" / side / f"{name}.cfg"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(res["configs"][name])
    n_networks = len({x for text in ours["configs"].values() for x in re.findall(r"(?m)^vlan (\d+)$", text)})
    return {
        "shape": shape,
        "leaves": n,
        "spines": spines,
        "devices": devices,
        "networks_in_fabric": n_networks,
        "pyavd": {
            "version": avd["pyavd_version"],
            "total_s": round(avd_e2e, 3),
            "per_device_ms": ms(avd_e2e),
            "split_s": {
                k: round(avd[k], 3)
                for k in (
                    "validate_inputs_s",
                    "load_inputs_s",
                    "facts_s",
                    "structured_config_s",
                    "validate_structured_config_s",
                    "config_s",
                )
            },
            "per_device_ms_split": {
                "validate_inputs": ms(avd["validate_inputs_s"]),
                "load_inputs (AVDDesign)": ms(avd["load_inputs_s"]),
                "facts (once, amortised)": ms(avd["facts_s"]),
                "structured_config": ms(avd["structured_config_s"]),
                "validate_structured_config": ms(avd["validate_structured_config_s"]),
                "config": ms(avd["config_s"]),
                "render_only (structured_config + validate + config)": ms(avd_render),
            },
            "imports_s": round(avd["imports_s"], 3),
            "warmup_2_leaves_s": round(avd["warmup_s"], 3),
            "peak_rss_mb": avd["peak_rss_mb"],
            "config_lines": config_stats(avd["configs"], avd["roles"]),
        },
        "ours": {
            "total_s": round(ours_e2e, 4),
            "per_device_ms": ms(ours_e2e),
            "load_s": round(ours["load_s"], 4),
            "render_s": round(ours["render_s"], 4),
            "per_device_ms_split": {"load (amortised)": ms(ours["load_s"]), "render": ms(ours["render_s"])},
            "imports_s": round(ours["imports_s"], 3),
            "warmup_2_leaves_s": round(ours["warmup_s"], 4),
            "peak_rss_mb": ours["peak_rss_mb"],
            "config_lines": config_stats(ours["configs"], ours["roles"]),
        },
        "speedup": {
            "end_to_end": round(avd_e2e / ours_e2e, 1),
            "render_only": round(avd_render / ours["render_s"], 1),
            "target": ">= 20x per device",
            "met": avd_e2e / ours_e2e >= 20 and avd_render / ours["render_s"] >= 20,
        },
        "comparability": compare_features(ours["configs"], avd["configs"], ours["roles"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--leaves", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--spines", type=int, default=2)
    ap.add_argument("--vnis", type=int, default=20)
    ap.add_argument(
        "--shapes",
        nargs="+",
        choices=SHAPES,
        default=list(SHAPES),
        help="pairs: generate_fabric as is (each leaf pair its own networks); shared: the same networks on every leaf",
    )
    ap.add_argument("--save-configs", type=Path, default=None, help="write the first leaf's and spine's configs here")
    ap.add_argument("--child", choices=("ours", "pyavd"), help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        fn = child_ours if a.child == "ours" else child_pyavd
        result = fn(a.n, a.spines, a.vnis, a.shapes[0])
        result["peak_rss_mb"] = _rss_mb()
        print(json.dumps(result))
        return
    if importlib.util.find_spec("pyavd") is None:
        print(PYAVD_MISSING, file=sys.stderr)
        raise SystemExit(2)
    t0 = time.perf_counter()
    sizes = [one_size(n, a.spines, a.vnis, shape, a.save_configs) for shape in a.shapes for n in a.leaves]
    report(
        "pyavd_compare",
        {
            "fabric": f"{a.spines} spines + N leaves, {a.vnis} SVIs/VNIs per leaf, L3LS EVPN (eBGP underlay, eBGP EVPN "
            "overlay, VXLAN, tenant VRFs with L3 VNIs, anycast gateway), EOS output",
            "shapes": {
                "pairs": "generate_fabric as is: each leaf pair carries its own networks",
                "shared": "the same networks on every leaf (classic AVD example shape)",
            },
            "sizes": sizes,
            "wall_s": round(time.perf_counter() - t0, 1),
            "target": "ours >= 20x faster per device than pyavd (end to end and render only)",
        },
    )


if __name__ == "__main__":
    main()
