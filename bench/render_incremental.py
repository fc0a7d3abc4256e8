"""Incremental render on the 1,000-leaf fabric (2 spines, 200 hosts, 2,000 instances): issues 3 and 12.

The render stage's own path, warm as in a long-running `lintas worker --stage render`: the
model cache holds the previous commit's parsed files and the previous render index (with its
input fingerprints) is known. Measured per change, end to end: load + validate the new
commit, fingerprint every target's input projection, render the targets whose fingerprint
changed in the template sandbox (a fresh child process per job, started between jobs as
the stage does), and
build the plan against the previous render. Every step is checked against a full render of
the same commit (byte-identical artifacts), so a fast but wrong result cannot pass.

Changes (each applied ``--repeat`` times, one after the other):
- ``vni``: a new VNI carried by one leaf: 1 target; target <= 0.5 s;
- ``mac``: one instance's MAC changed: its host only; target <= 0.5 s;
- ``vtep``: an explicit VTEP outside the pool on one leaf: every switch's prefix-list changes,
  so all 1,002 switches render again; target <= 2.5 s.

    .venv/bin/python -m bench.render_incremental [--leaves 1000 --repeat 5 --changes vni mac vtep]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import report, workdir
from bench.render_full import write_repo
from lintas.engine.artifacts import content_id
from lintas.workers.model import InfraModel, load_model
from lintas.workers.model.cache import ModelCache
from lintas.workers.model.gcpause import gc_paused, settle
from lintas.workers.model.generate import generate_fabric
from lintas.workers.render.env import Renderer, Spares
from lintas.workers.render.plan import RenderIndex, make_plan
from lintas.workers.render.targets import kind_of, render_inputs, render_targets, select_targets

Edit = Callable[[Path, int], str]  # applies change i, returns the target expected to change (or "*switches")


def _vni(leaf: str) -> Edit:
    def edit(d: Path, i: int) -> str:
        path = d / "fabric" / "tenants.yaml"
        path.write_text(
            path.read_text() + f"- name: bench-{i}\n  vrf: TENANT-A\n  vlan: {3000 + i}\n"
            f"  vni: {9_000_000 + i}\n  gateway: 172.31.{i}.1/24\n  mtu: 9000\n  leaves: [{leaf}]\n"
        )
        return leaf

    return edit


def _mac(model: InfraModel) -> Edit:
    inst = sorted(model.instances.values(), key=lambda x: x.name)[len(model.instances) // 2]

    def edit(d: Path, i: int) -> str:
        path = d / "hosts" / "instances.yaml"
        text = path.read_text()
        block = text.index(f"- name: {inst.name}\n")
        end = text.find("\n- name:", block + 1)
        end = len(text) if end < 0 else end
        new_block = re.sub(r"mac: '[0-9a-f:]+'", f"mac: 'fa:16:3e:ee:ee:{i:02x}'", text[block:end], count=1)
        path.write_text(text[:block] + new_block + text[end:])
        return inst.host

    return edit


def _vtep(leaf: str) -> Edit:
    def edit(d: Path, i: int) -> str:
        path = d / "fabric" / "devices.yaml"
        text = path.read_text()
        text = re.sub(
            r"(- name: " + re.escape(leaf) + r"\n(?:  .*\n)*?)(  vtep_ip: .*\n)?(?=- name:|\Z)",
            lambda m: m.group(1) + f"  vtep_ip: 10.99.{i}.14\n",
            text,
            count=1,
        )
        path.write_text(text)
        return "*switches"

    return edit


def run_change(d: Path, name: str, edit: Edit, repeat: int, state: dict[str, object]) -> dict[str, object]:
    cache: ModelCache = state["cache"]  # type: ignore[assignment]
    index: RenderIndex = state["index"]  # type: ignore[assignment]
    blobs: dict[str, bytes] = state["blobs"]  # type: ignore[assignment]
    spares: Spares = state["spares"]  # type: ignore[assignment]
    timings, rendered_counts = [], []
    for i in range(repeat):
        expect = edit(d, i + 1)
        t0 = time.perf_counter()
        with gc_paused():  # as the render stage runs a job
            new = load_model(d, cache=cache)
            with Renderer(d, spares=spares) as renderer:
                sel = select_targets(new, renderer, previous=index.inputs, reusable=index.targets)
                out = render_inputs({t: sel.inputs[t] for t in sel.render}, renderer)
            idx = RenderIndex(
                repo="bench",
                sha=f"{name}{i}",
                targets={},
                kinds={t: kind_of(new, t) for t in new.targets},
                inputs=sel.fingerprints,
            )
            for t in new.targets:
                idx.targets[t] = (
                    {n: content_id(x.encode()) for n, x in out[t].items()} if t in out else index.targets[t]
                )

            async def fetch(b: str) -> bytes | None:
                return blobs.get(b)

            plan = asyncio.run(make_plan(idx, index.targets, against="previous", fetch=fetch, texts=out))
        timings.append(time.perf_counter() - t0)
        rendered_counts.append(len(sel.render))
        changed = plan.by_status("changed")
        if expect == "*switches":
            assert set(changed) == set(new.devices), plan.summary()
        else:
            assert changed == [expect], plan.summary()
        _check_full(d, new, idx)  # the bench's own check, outside the timing
        for arts in out.values():
            for x in arts.values():
                blobs[content_id(x.encode())] = x.encode()
        state["index"] = idx
        index = idx
        settle()  # as the render worker does after every job
        spares.refill()  # as the stage does after every job: the next job's sandbox starts between jobs
        time.sleep(0.2)  # jobs do not arrive back to back: the spare is up before the next one
    return {
        "change": name,
        "rerendered": max(rendered_counts),
        "s_median": round(statistics.median(timings), 3),
        "s_min": round(min(timings), 3),
        "s_max": round(max(timings), 3),
    }


def _check_full(d: Path, model: InfraModel, idx: RenderIndex) -> None:
    """The soundness check, outside the timing: a full render gives the same artifacts."""
    with Renderer(d) as renderer:
        full = render_targets(model, model.targets, renderer)
    for t, arts in full.items():
        assert idx.targets[t] == {n: content_id(x.encode()) for n, x in arts.items()}, f"{t} differs from a full render"


def main(leaves: int, hosts: int, instances: int, repeat: int, changes: list[str]) -> None:
    files = generate_fabric(leaves, n_hosts=hosts, n_instances=instances)
    with workdir() as d:
        write_repo(d, files)
        cache = ModelCache()
        model = load_model(d, cache=cache)
        with Renderer(d) as renderer:
            sel = select_targets(model, renderer, previous=None)
            texts = render_inputs(sel.inputs, renderer)
        settle()  # as the render worker does after every job
        index = RenderIndex(
            repo="bench",
            sha="c0",
            targets={t: {n: content_id(x.encode()) for n, x in a.items()} for t, a in texts.items()},
            kinds={t: kind_of(model, t) for t in model.targets},
            inputs=sel.fingerprints,
        )
        spares = Spares()
        spares.refill()
        state: dict[str, object] = {
            "cache": cache,
            "index": index,
            "spares": spares,
            "blobs": {content_id(x.encode()): x.encode() for a in texts.values() for x in a.values()},
        }
        leaf = sorted(model.leaves, key=lambda dev: dev.name)[leaves // 2].name
        edits: dict[str, Edit] = {"vni": _vni(leaf), "mac": _mac(model), "vtep": _vtep(leaf)}
        rows = [run_change(d, c, edits[c], repeat, state) for c in changes]
    report(
        "render_incremental",
        {
            "devices": leaves + 2,
            "targets": len(model.targets),
            "repeat": repeat,
            "changes": rows,
            "target": "vni and mac <= 0.5 s median (one target each); vtep <= 2.5 s (every switch)",
        },
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--changes", nargs="+", default=["vni", "mac", "vtep"], choices=["vni", "mac", "vtep"])
    a = ap.parse_args()
    main(a.leaves, a.hosts, a.instances, a.repeat, a.changes)
