"""The twin stage's report (``twin/<run>.json``, issue 18) on the run: `lintas show` prints it
(what was built, each phase's time, the failing checks with expected vs observed) and the API
serves it as the run's ``twin`` artifact, redacted. A stored report and a stored run on a real
nats-server; the report's producer is tested on the lab (tests/lab/test_twin_stage.py)."""

from __future__ import annotations

import asyncio
import io
import json

from rich.console import Console

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.bus import Topology
from lintas.engine.cli.output import print_twin
from lintas.engine.contracts import TwinPhase, TwinReport, TwinSummary
from lintas.engine.settings import Settings
from lintas.engine.state import RunState, StageRecord, StageStatus
from tests.api.conftest import Api, auth, fake_run, store_runs
from tests.integration.test_cli import lintas

FAILING = {
    "device": "leaf-01",
    "check": "vni",
    "subject": "10010",
    "passed": False,
    "expected": {"remote_vteps": ["10.250.1.12", "10.250.1.13"]},
    "observed": {"remote_vteps": ["10.250.1.13"]},
}


def report(run_id: str) -> TwinReport:
    return TwinReport(
        run_id=run_id,
        sha="a" * 40,
        twin="run-0123456789ab",
        prefix="lt1d64",
        switches=["leaf-01", "leaf-02", "spine-01"],
        slice={
            "leaf-01": ["carries VNI 10010 unchanged"],
            "leaf-02": ["changed"],
            "spine-01": ["peers with leaf-02"],
        },
        start="last_deployed",
        started_from={"leaf-01": "deployed " + "b" * 40, "leaf-02": "day0", "spine-01": "deployed " + "b" * 40},
        deployed=["leaf-01", "leaf-02", "spine-01"],
        committed=["leaf-02"],
        unchanged=["leaf-01", "spine-01"],
        phases=[
            TwinPhase(name="build", seconds=0.49, ok=True),
            TwinPhase(name="start", seconds=13.8, ok=True),
            TwinPhase(name="deploy", seconds=4.0, ok=True),
            TwinPhase(name="verify", seconds=3.9, ok=False),
            TwinPhase(name="teardown", seconds=0.33, ok=True),
        ],
        totals={"checks": 2, "passed": 1, "failed": 1},
        checks=[FAILING, {"device": "leaf-02", "check": "bgp", "subject": "10.250.16.48", "passed": True}],
        out_of_scope=[
            "hosts (libvirt, OVS): not built in twins yet",
            "spine-02 not in the slice: session leaf-02 ↔ spine-02 not checked",
        ],
        error="verify: password=hunter2hunter2 rejected",
    )


async def store_twin_run(topo: Topology, *, with_report: bool) -> str:
    run = fake_run(7, state=RunState.failed)
    rep = report(run.run_id)
    summary = TwinSummary(
        report=S.twin_report_doc(run.run_id),
        passed=False,
        switches=rep.switches,
        start=rep.start,
        committed=rep.committed,
        timings=rep.timings(),
        totals=rep.totals,
        checks=[FAILING],
    )
    run.stages["twin"] = StageRecord(name="twin", kind="twin", status=StageStatus.failed, summary=summary.dump())
    await store_runs(topo, [run])
    if with_report:
        await NatsArtifactStore(topo.artifacts).put_doc(S.twin_report_doc(run.run_id), rep.model_dump_json().encode())
    return run.run_id


async def test_the_twin_report_is_a_run_artifact_redacted(api: Api) -> None:
    run_id = await store_twin_run(api.topo, with_report=True)
    viewer = auth("viewer")
    got = await api.http.get(f"/api/v1/runs/{run_id}/artifacts/twin", headers=viewer)
    assert got.status_code == 200, got.text
    body = TwinReport.model_validate(got.json())
    assert body.committed == ["leaf-02"] and [p.name for p in body.phases][0] == "build"
    assert body.failing() == [FAILING]
    assert "hunter2hunter2" not in got.text  # the report's text is redacted on the way out
    run = (await api.http.get(f"/api/v1/runs/{run_id}", headers=viewer)).json()
    twin = TwinSummary.model_validate(next(s for s in run["stages"] if s["kind"] == "twin")["summary"])
    assert twin.report == S.twin_report_doc(run_id) and twin.timings["start_s"] == 13.8
    assert (await api.http.get(f"/api/v1/runs/{run_id}/artifacts/twin")).status_code == 401


async def test_no_twin_report_is_a_404(api: Api) -> None:
    run = fake_run(8)
    await store_runs(api.topo, [run])
    got = await api.http.get(f"/api/v1/runs/{run.run_id}/artifacts/twin", headers=auth("viewer"))
    assert got.status_code == 404 and "no twin artifact" in got.json()["detail"]


async def test_show_prints_the_twin_report(settings: Settings, bus: tuple[object, Topology]) -> None:
    """`lintas show` (the real command, against the run stored on nats): built, phases, failing checks."""
    _nc, topo = bus
    run_id = await store_twin_run(topo, with_report=True)
    out = (await asyncio.to_thread(lintas, settings, "show", run_id)).stdout
    assert "twin (stage twin, twin/" in out and "failed" in out
    assert "twin run-0123456789ab (lt1d64): 3 switch(es)" in out
    assert "started from last_deployed (leaf-01: deployed bbbbbbbb, leaf-02: day0" in out
    assert "committed: leaf-02" in out
    # the change's slice, each switch with why, and what the slice could not check
    assert "the change's slice:" in out and "leaf-01: carries VNI 10010 unchanged" in out
    assert "spine-01: peers with leaf-02" in out and "leaf-02: changed" in out
    assert "out of scope (not proven by this twin):" in out
    assert "- spine-02 not in the slice: session leaf-02 ↔ spine-02 not checked" in out
    rows = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0] in {"start", "total"}}
    assert rows["start"][1] == "13.8s" and rows["total"][1] == "22.5s"
    check = next(ln for ln in out.splitlines() if ln.startswith("leaf-01") and " vni " in f" {ln} ")
    assert "remote_vteps=10.250.1.12, 10.250.1.13" in check and "remote_vteps=10.250.1.13" in check
    assert "10.250.16.48" not in out  # a passing check is not listed
    assert "error: verify: password=****" in out and "hunter2hunter2" not in out


def test_print_twin_without_its_report_uses_the_summary() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=80, color_system=None)
    summary = TwinSummary(
        report="twin/r-1.json",
        passed=True,
        switches=["leaf-01"],
        start="day0",
        committed=["leaf-01"],
        timings={"build_s": 0.5, "total_s": 15.2},
        whole=True,
        out_of_scope=["hosts (libvirt, OVS): not built in twins yet"],
    )
    print_twin(console, "try-it", summary, None)
    text = buf.getvalue()
    assert "the whole topology: the change touches every switch" in text
    assert "- hosts (libvirt, OVS): not built in twins yet" in text
    assert "twin (stage try-it, twin/r-1.json): passed" in text
    assert "switches: leaf-01; started from day0" in text and "timings: build 500ms, total 15.2s" in text
    assert "failing checks" not in text
    assert json.loads(summary.model_dump_json())["passed"] is True
