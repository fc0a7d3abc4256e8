"""Per-target results keep the error's type and disposition across a fan-out (Fleet, HostFleet).

No network: the fleet's napalm sessions are stand-ins put where nornir keeps open connections,
so ``fn`` runs exactly as in a deploy and raises what a driver raises.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from lintas.engine.disposition import classify
from lintas.engine.errors import InputError, PermanentError, RetryableError
from lintas.engine.settings import DeploySettings, Settings
from lintas.workers.deploy.connect import NAPALM
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.deploy.hostfleet import HostFleet
from lintas.workers.deploy.outcome import Outcome, TargetError, stage_error
from lintas.workers.deploy.record import TargetResult
from lintas.workers.drivers.frr.errors import FrrCommitError, FrrConnectionError
from lintas.workers.hosts.connect import HostConn
from lintas.workers.model import load_model

TEMPLATE = Path(__file__).resolve().parents[2] / "gitops-repo-template"
SECRET = "Sw0rdfish-in-the-message"


@dataclass
class _Session:  # what nornir keeps per open connection: ``.connection`` is the driver
    connection: object

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _no_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LINTAS_DEPLOY__"):
            monkeypatch.delenv(name)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        home=tmp_path,
        deploy=DeploySettings(
            use_lab=False, key_file=Path("/etc/lintas/id"), known_hosts=Path("/etc/lintas/known_hosts")
        ),
    )


RAISES: dict[str, BaseException] = {
    "leaf-01": FrrConnectionError("leaf-01: ssh: connection refused"),  # a RetryableError
    "leaf-02": FrrCommitError("leaf-02: frr-reload refused the config"),  # a PermanentError
    "leaf-03": InputError([], "bad candidate"),
    "leaf-04": ValueError(f"unexpected, password={SECRET}"),
}


def _op(driver: object, name: str) -> str:
    if name in RAISES:
        raise RAISES[name]
    return f"{name} ok"


def test_fleet_outcomes_keep_the_errors_type_and_disposition(tmp_path: Path) -> None:
    model = load_model(TEMPLATE)
    names = [*RAISES, "spine-01"]
    fleet = Fleet(model, _settings(tmp_path), names)
    for n in names:
        fleet._nr.inventory.hosts[n].connections[NAPALM] = _Session(object())  # type: ignore[assignment]
    out = asyncio.run(fleet.run(names, _op))
    assert out["spine-01"] == Outcome("spine-01 ok", None)
    for name, exc in RAISES.items():
        o = out[name]
        assert not o.ok and o.exc is exc and o.failure is not None
        assert o.failure.type == type(exc).__name__
        want = classify(exc, delivery=1, max_deliver=2, default_delay_s=1.0).action
        assert o.failure.disposition == ("retry" if want == "retry" else "finish")
    assert [n for n in RAISES if out[n].failure.retryable] == ["leaf-01", "leaf-04"]  # type: ignore[union-attr]
    assert SECRET not in out["leaf-04"].error and SECRET not in out["leaf-04"].failure.message  # type: ignore[operator,union-attr]


def test_hostfleet_outcomes_keep_the_errors_type_and_disposition(tmp_path: Path) -> None:
    model = load_model(TEMPLATE)
    hosts = sorted(model.hosts)[:2]
    fleet = HostFleet(model, _settings(tmp_path), hosts)
    errors: dict[str, BaseException] = {
        hosts[0]: RetryableError("libvirt busy", delay_s=7.0),
        hosts[1]: PermanentError("domain XML refused"),
    }

    def op(conn: HostConn) -> None:
        raise errors[conn.name]

    out = asyncio.run(fleet.run(hosts, op))
    assert {n: (o.failure.type, o.failure.disposition, o.failure.delay_s) for n, o in out.items() if o.failure} == {
        hosts[0]: ("RetryableError", "retry", 7.0),
        hosts[1]: ("PermanentError", "finish", 0.0),
    }
    assert all(out[n].exc is errors[n] for n in hosts)


def test_one_permanent_failure_makes_the_stage_error_permanent() -> None:
    retry = TargetError(type="FrrConnectionError", message="refused", disposition="retry", delay_s=2.0)
    final = TargetError(type="FrrCommitError", message="refused", disposition="finish")
    e = stage_error({"leaf-01": retry, "leaf-02": retry.model_copy(update={"delay_s": 5.0})}, "wave 1")
    assert isinstance(e, RetryableError) and e.delay_s == 5.0 and "leaf-01: FrrConnectionError" in str(e)
    e2 = stage_error({"leaf-01": retry, "leaf-02": final}, "wave 1")
    assert isinstance(e2, PermanentError)
    assert classify(e2, delivery=1, max_deliver=5, default_delay_s=1.0).action == "finish"
    assert classify(e, delivery=1, max_deliver=5, default_delay_s=1.0).action == "retry"


def test_the_deployment_record_stores_the_typed_failure() -> None:
    f = TargetError(type="FrrCommitError", message="frr-reload refused", disposition="finish")
    r = TargetResult(target="leaf-02", status="failed", error=f.message, failure=f)
    back = TargetResult.model_validate_json(r.model_dump_json())
    assert back.failure == f and not back.failure.retryable
    assert TargetResult.model_validate({"target": "leaf-01"}).failure is None  # records written before


def test_the_disposition_reaches_the_deploy_stages_result(tmp_path: Path) -> None:
    """What Fleet.run returned for a failed commit is what the stage's result carries per device."""
    from lintas.engine.contracts import DeploySummary
    from lintas.workers.deploy.record import DeployRecord
    from lintas.workers.deploy.rollout import result_of

    model = load_model(TEMPLATE)
    fleet = Fleet(model, _settings(tmp_path), ["leaf-01", "leaf-02"])
    for n in ("leaf-01", "leaf-02"):
        fleet._nr.inventory.hosts[n].connections[NAPALM] = _Session(object())  # type: ignore[assignment]
    out = asyncio.run(fleet.run(["leaf-01", "leaf-02"], _op))
    record = DeployRecord(run_id="r-1", repo="demo", sha="0" * 40, revert_in_s=60)
    for name, o in out.items():  # as Rollout.switch_wave records a failed commit
        r = record.targets[name] = TargetResult(target=name, wave=1)
        r.status, r.error, r.failure = "failed", o.error, o.failure
    result = result_of(DeployRecord.model_validate_json(record.model_dump_json()))  # through the stored record
    assert result.outcome == "failed"
    devices = {d["target"]: d for d in DeploySummary.model_validate(result.summary).devices}
    assert devices["leaf-01"]["failure"] == {
        "type": "FrrConnectionError",
        "message": out["leaf-01"].error,
        "disposition": "retry",
        "delay_s": out["leaf-01"].failure.delay_s,
    }  # type: ignore[union-attr]
    assert (devices["leaf-02"]["failure"]["type"], devices["leaf-02"]["failure"]["disposition"]) == (
        "FrrCommitError",
        "finish",
    )
