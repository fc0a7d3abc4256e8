"""Full validate + render of a generated fabric: 2 spines + 1,000 leaves (20 VNIs each)
plus 200 hosts and 2,000 instances (issue 3). Target: <= 5 s and <= 1 GiB peak RSS.

    .venv/bin/python -m bench.render_full [--leaves 1000 --hosts 200 --instances 2000]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from bench.common import report, workdir
from lintas.workers.model import load_model
from lintas.workers.model.generate import generate_fabric
from lintas.workers.render.env import Renderer
from lintas.workers.render.targets import render_targets


def write_repo(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def main(leaves: int, hosts: int, instances: int) -> None:
    with workdir() as d:
        write_repo(d, generate_fabric(leaves, n_hosts=hosts, n_instances=instances))
        t0 = time.perf_counter()
        model = load_model(d)
        t1 = time.perf_counter()
        with Renderer(d) as renderer:  # templates run in the sandbox child, as in the render stage
            out = render_targets(model, model.targets, renderer)
        t2 = time.perf_counter()
    n_dev = len(model.devices)
    artifacts = sum(len(a) for a in out.values())
    lines = sum(x.count("\n") for a in out.values() for x in a.values())
    report(
        "render_full",
        {
            "devices": n_dev,
            "hosts": len(model.hosts),
            "instances": len(model.instances),
            "artifacts": artifacts,
            "config_lines": lines,
            "validate_s": round(t1 - t0, 3),
            "render_s": round(t2 - t1, 3),
            "total_s": round(t2 - t0, 3),
            "render_ms_per_target": round((t2 - t1) * 1000 / len(out), 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "sandbox_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
            "sandbox_cpu_s": round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
                + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime,
                2,
            ),
            "target": "total <= 5 s, peak RSS <= 1024 MB (worker and its template sandbox each)",
        },
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--instances", type=int, default=2000)
    a = ap.parse_args()
    main(a.leaves, a.hosts, a.instances)
