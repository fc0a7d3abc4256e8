"""The deploy record and the verify/rollback reports are artifacts of the run, redacted."""

from __future__ import annotations

import json

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.workers.deploy.record import DeployRecord, TargetResult, save_record
from tests.api.conftest import Api, auth, fake_run, store_runs


async def test_deploy_record_and_reports_are_served(api: Api) -> None:
    run = fake_run(1)
    await store_runs(api.topo, [run])
    store = NatsArtifactStore(api.topo.artifacts)
    record = DeployRecord(run_id=run.run_id, repo=run.repo, sha=run.sha, revert_in_s=180, waves=[["leaf-01"]])
    record.targets["leaf-01"] = TargetResult(
        target="leaf-01",
        status="committed",
        changed=True,
        wave=0,
        diff="+ neighbor X password=hunter2hunter2\n",
        checkpoint="c1",
    )
    await save_record(store, record)
    checks = [{"device": "leaf-01", "check": "vni", "subject": "10030", "passed": False}]
    await store.put_doc(S.verify_report_doc(run.run_id, "verify"), json.dumps(checks).encode())
    viewer = auth("viewer")

    got = await api.http.get(f"/api/v1/runs/{run.run_id}/artifacts/deploy", headers=viewer)
    assert got.status_code == 200
    body = got.json()
    assert body["targets"]["leaf-01"]["status"] == "committed" and body["waves"] == [["leaf-01"]]
    assert "hunter2hunter2" not in got.text  # secrets in a diff are masked on the way out
    ver = await api.http.get(f"/api/v1/runs/{run.run_id}/artifacts/verify", headers=viewer)
    assert ver.status_code == 200 and ver.json() == checks
    missing = await api.http.get(f"/api/v1/runs/{run.run_id}/artifacts/rollback", headers=viewer)
    assert missing.status_code == 404 and "no rollback artifact" in missing.json()["detail"]
    assert (await api.http.get(f"/api/v1/runs/{run.run_id}/artifacts/deploy")).status_code == 401


async def test_targets_carry_the_latest_drift_state(api: Api) -> None:
    from datetime import UTC, datetime

    from lintas.engine.targets import TargetState, TargetStore
    from lintas.workers.deploy.drift import DriftReport, TargetDrift, publish

    now = datetime.now(UTC)
    for name in ("leaf-01", "leaf-02"):
        await TargetStore(api.topo.targets).put(
            TargetState(target=name, kind="device", repo="infra", commit="c" * 40, run_id="r-1", deployed_at=now)
        )
    viewer = auth("viewer")
    before = (await api.http.get("/api/v1/targets", headers=viewer)).json()
    assert [t["drift"] for t in before] == [None, None]  # never scanned: unknown, not "in sync"
    report = DriftReport(
        checked_at=now,
        duration_s=0.1,
        targets=[
            TargetDrift(target="leaf-01", kind="device", repo="infra", state="in_sync", deployed_commit="c" * 40),
            TargetDrift(
                target="leaf-02",
                kind="device",
                repo="infra",
                state="drifted",
                deployed_commit="c" * 40,
                differences=["[frr] frr-reload.py --test", "- ip prefix-list HAND-MADE seq 5 permit 198.51.100.0/24"],
            ),
        ],
    )
    await publish(api.topo, report)
    got = {t["target"]: t for t in (await api.http.get("/api/v1/targets", headers=viewer)).json()}
    assert got["leaf-01"]["drift"] == "in_sync" and got["leaf-01"]["differences"] == []
    assert got["leaf-02"]["drift"] == "drifted" and "198.51.100.0/24" in got["leaf-02"]["differences"][1]
    assert got["leaf-02"]["drift_checked_at"] is not None
    msg = await api.topo.js.get_last_msg("LINTAS_NOTIFY", "lintas.notify.drift")
    assert DriftReport.model_validate_json(msg.data or b"").targets[1].state == "drifted"
