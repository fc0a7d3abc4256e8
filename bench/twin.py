"""Twin build and teardown time and memory (issue 18's foundation), for real.

Builds twins of the template (a 2-spine + 1-leaf slice, then all 6 switches) ``--rounds`` times
each, measures their processes (PSS of FRR + sshd in the twin's namespaces) right after
``twin_up``, and removes them with ``twin_down``. Needs root, FRR and openssh; the production lab
may be up or not (a twin never touches it).

    .venv/bin/python -m bench.twin [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from bench.common import report, workdir
from lintas.engine.infra_repo import TEMPLATE_DIR
from lintas.engine.settings import Settings
from lintas.workers.lab.netns import namespace_inodes, pids_in
from lintas.workers.lab.twin import twin_down, twin_up
from lintas.workers.lab.twin_life import TwinRecord

SLICE = frozenset({"spine-01", "spine-02", "leaf-01"})


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0)
    except OSError:
        return 0


def twin_pss_mb(record: TwinRecord) -> float:
    """PSS (MB) of every process in the twin's namespaces (FRR, sshd)."""
    namespaces = [n for n in os.listdir("/run/netns") if n.startswith(record.prefix + "-")]
    return sum(_pss_kb(p) for p in pids_in(set(namespace_inodes(namespaces)))) / 1024


def node_pss_mb(record: TwinRecord) -> dict[str, float]:
    """PSS (MB) of the processes in each switch's and host's namespace of the twin (a host's: libvirtd,
    virtlogd, OVS, sshd and its QEMU domains)."""
    return {
        node: sum(_pss_kb(p) for p in pids_in(set(namespace_inodes([f"{record.prefix}-{node}"])))) / 1024
        for node in [*record.switches, *record.hosts]
    }


async def _round(settings: Settings, only: frozenset[str] | None, name: str) -> dict[str, float]:
    t = time.monotonic()
    record = await twin_up(settings, TEMPLATE_DIR, name=name, only=only)
    up = time.monotonic() - t
    pss = twin_pss_mb(record)
    t = time.monotonic()
    await twin_down(settings, name)
    return {"up_s": up, "down_s": time.monotonic() - t, "pss_mb_per_switch": pss / len(record.switches)}


async def bench(settings: Settings, rounds: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for label, only in (("slice_2x1", SLICE), ("template_2x4", None)):
        runs = [await _round(settings, only, f"bench-{label.replace('_', '-')}-{i}") for i in range(rounds)]
        out[label] = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]} | {
            "up_s_max": round(max(r["up_s"] for r in runs), 2)
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with workdir() as d:
        result = asyncio.run(bench(Settings(home=d / "home"), a.rounds))
    report("twin", {"rounds": a.rounds, "load_average": os.getloadavg(), **result})


if __name__ == "__main__":
    main()
