"""Crash drills on the real lab: a crash anywhere between commit and confirm never leaves a run
``succeeded`` while its devices revert (issue 19).

One lab (2 spines + 4 leaves in network namespaces, 2 hypervisor hosts), one nats-server
and the real ``lintas up`` for the whole module; the drills run back to back, in order.
Each stops the stack at one point, deterministically: ``LINTAS_FAULT_POINT`` (test only,
:mod:`workers.deploy.faults`) makes the process write a marker and wait there, and the
drill then SIGKILLs ``lintas up`` *and* the nats-server together (or, in one drill, only
the worker that holds the job), restarts them, and lets the run carry on. After each,
the run's end state matches the devices: ``succeeded`` with every change confirmed on the
switches (no pending commit left), or ``rolled_back`` with every device restored. The last
drill checks that, with every revert timer expired, nothing has drifted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from lintas.workers.deploy import ops
from lintas.workers.model import load_model
from lintas.workers.render.env import Renderer
from lintas.workers.render.network import render_device
from tests.conftest import PLUGINS, ROOT
from tests.deploy.test_fabric_e2e import (  # the e2e module's helpers and lab fixtures (one lab per module)
    LEAVES,
    VTEP,
    Env,
    Switches,
    add_network,
    lab_settings,
    stage,
    sw,
    wait_for,
)
from tests.deploy.test_hosts_e2e import NEW, add_instance, domains, on_br_int

__all__ = ["lab_settings", "sw"]  # fixtures re-used from test_fabric_e2e (module scope: one lab here)

pytestmark = [pytest.mark.integration]

REVERT_IN_S = 120  # five crashes of one run, three verifies, before the confirm (the timer drill uses 45)
SHORT_REVERT_IN_S = 45
HEALTH_TIMEOUT_S = 20
VERIFY_TIMEOUT_S = 25
ACK_WAIT_S = 6
OTHER_STAGES = ["validate", "render", "policy", "secscan", "verify", "rollback"]


class DrillEnv(Env):
    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """As :meth:`Env.cli`, but a failing call says what it printed."""
        got = super().cli(*args, check=False)
        if check and got.returncode != 0:
            raise AssertionError(
                f"lintas {' '.join(args)} exited {got.returncode}:\n{got.stderr[-3000:]}\n{got.stdout[-1000:]}"
            )
        return got


class Stack:
    """``lintas up`` (or its parts) and the module's nats-server, killed and restarted by the drills."""

    def __init__(self, lx: Env, nats: EmbeddedNats) -> None:
        self.lx, self.nats = lx, nats
        self.parts: list[subprocess.Popen[bytes]] = []

    def up(self) -> None:
        self.lx.stop()
        self.lx.start()

    def spawn(self, *args: str, fault: str | None = None) -> subprocess.Popen[bytes]:
        env = dict(self.lx.env)
        if fault:
            env["LINTAS_FAULT_POINT"] = fault
        fh = open(self.lx.log, "ab")  # noqa: SIM115 - owned by the child
        p = subprocess.Popen(
            [sys.executable, "-m", "lintas.engine.cli.main", *args], env=env, stdout=fh, stderr=subprocess.STDOUT
        )
        fh.close()
        self.parts.append(p)
        return p

    def kill_all(self) -> None:
        """SIGKILL ``lintas up`` and the nats-server at once: nothing is flushed, nothing said goodbye."""
        assert self.lx.proc is not None
        os.kill(self.lx.proc.pid, signal.SIGKILL)
        os.kill(self.nats.pid, signal.SIGKILL)
        self.lx.proc.wait(10)
        asyncio.run(self.nats.stop())  # reaps the killed process

    def restart(self) -> None:
        asyncio.run(self.nats.start())
        self.up()

    def restart_until(self, run_id: str, point: str) -> None:
        """Restart (armed at ``point`` before), let the run resume, kill everything at ``point``."""
        self.restart()
        self.run_until(run_id, point)
        self.kill_all()

    def stop_parts(self) -> None:
        for p in self.parts:
            if p.poll() is None:
                p.terminate()
        for p in self.parts:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.parts.clear()

    # -- a run stopped at a fault point ----------------------------------------------------------

    def marker(self, point: str) -> Path:
        return self.lx.home / "faults" / point

    def run_until(self, run_id: str, point: str, timeout: float = 120.0) -> None:
        """Approve the run when it waits for it, until a process reaches ``point``."""
        deadline = time.monotonic() + timeout
        last = 0.0
        while time.monotonic() < deadline:
            if self.marker(point).exists():
                return
            if time.monotonic() - last > 1.0:
                last = time.monotonic()
                run = self.lx.show(run_id)
                if run["state"] == "waiting_approval":
                    self.lx.cli("approve", run_id)
                assert run["state"] not in ("succeeded", "failed", "rolled_back", "canceled"), (point, run["error"])
            time.sleep(0.1)
        raise AssertionError(f"{point} not reached within {timeout:g} s")

    def arm(self, point: str) -> None:
        """The running ``lintas up`` stops at ``point`` (LINTAS_FAULT_FILE: read at each check, consumed)."""
        self.marker(point).unlink(missing_ok=True)
        self.marker("arm").write_text(point + "\n")

    def crash_at(self, point: str, message: str, edit: Any) -> str:
        """Arm ``point``, push ``edit``, kill ``lintas up`` and nats-server there; returns the run id."""
        self.arm(point)
        run_id = self.lx.new_run(self.lx.push(message, edit))
        self.run_until(run_id, point)
        self.kill_all()
        return run_id

    def log_of(self, run_id: str) -> str:
        return " ".join(self.lx.cli("logs", run_id).stdout.split())  # the console wraps long lines


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    n = EmbeddedNats(tmp_path_factory.mktemp("drills-nats") / "nats", free_port())
    asyncio.run(n.start())
    yield n
    asyncio.run(n.stop())


@pytest.fixture(scope="module")
def st(lab_settings: Settings, nats: EmbeddedNats, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("drills")
    env = dict(os.environ)
    env.pop("LINTAS_FAULT_POINT", None)
    (lab_settings.home / "faults").mkdir(parents=True, exist_ok=True)
    env.update(
        LINTAS_FAULT_FILE=str(lab_settings.home / "faults" / "arm"),  # test only: workers/deploy/faults.py
        LINTAS_HOME=str(lab_settings.home),
        LINTAS_NATS_URL=nats.url,
        LINTAS_API_ADDR=f"127.0.0.1:{free_port()}",
        FABRIC_BGP_PASSWORD="Lx-drill-" + os.urandom(6).hex(),
        LINTAS_DEPLOY__REVERT_IN_S=str(REVERT_IN_S),
        LINTAS_DEPLOY__HEALTH_TIMEOUT_S=str(HEALTH_TIMEOUT_S),
        LINTAS_DEPLOY__VERIFY_TIMEOUT_S=str(VERIFY_TIMEOUT_S),
        LINTAS_DEPLOY__LEASE_TTL_S="60",
        LINTAS_DEPLOY__DOMAIN_SHUTDOWN_TIMEOUT_S="3",
        LINTAS_JOB_ACK_WAIT_S=str(ACK_WAIT_S),
        LINTAS_TICK_S="0.5",
        LINTAS_DRIFT_INTERVAL_S="0",
        PYTHONPATH=os.pathsep.join([str(PLUGINS), str(ROOT), env.get("PYTHONPATH", "")]),
        GIT_AUTHOR_NAME="Net Ops",
        GIT_AUTHOR_EMAIL="netops@example.invalid",
        GIT_COMMITTER_NAME="Net Ops",
        GIT_COMMITTER_EMAIL="netops@example.invalid",
    )
    e = DrillEnv(home=lab_settings.home, work=tmp / "demo", env=env, nats=nats, log=tmp / "up.log")
    s = Stack(e, nats)
    try:
        e.start()
        e.init()  # the template's pipeline without the twin stage (see Env.init)
        yield s
    finally:
        s.stop_parts()
        e.stop()


def succeeded_and_confirmed(st: Stack, sw: Switches, run: dict[str, Any], vni: int, leaves: list[str]) -> None:
    """``succeeded`` and true on the devices: no commit pending anywhere, the VNI on its leaves."""
    assert run["state"] == "succeeded", run["error"]
    assert sw.pending() == []
    for leaf in leaves:
        assert sw.remote_vteps(leaf, vni) == sorted(VTEP[x] for x in leaves if x != leaf), leaf
    assert sorted(stage(run, "verify")["summary"]["confirmed"]) == sorted(leaves)


# -- the drills, in order ----------------------------------------------------------------------------


def test_seed_deploy(st: Stack, sw: Switches) -> None:
    first = st.lx.drive(st.lx.new_run(st.lx.git("rev-parse", "HEAD"), timeout=60))
    assert first["state"] == "succeeded", first["error"]
    assert sw.pending() == [] and sw.fabric_up()


def test_one_run_survives_a_crash_at_every_point_between_commit_and_confirm(st: Stack, sw: Switches) -> None:
    """One change (a VNI on leaf-01, the canary wave, and leaf-02, the next wave), and five
    crashes of `lintas up` + nats-server, one at each point; each restart is armed at the next.
    At every crash the devices are as expected; the run ends ``succeeded`` with both commits
    confirmed. Covers the reported defect: after the crash right after the canary's commit, the
    restarted deploy finds leaf-01 at its candidate and must adopt the pending commit (same
    checkpoint, confirmed later), not report it unchanged."""
    before = sw.checkpoints()
    run_id = st.crash_at("deploy.before_commit", "VNI 10061", add_network("d-61", 61, 10061, ["leaf-01", "leaf-02"]))
    assert sw.pending() == [] and sw.checkpoints() == before  # nothing committed yet

    st.arm("deploy.committed")
    st.restart_until(run_id, "deploy.committed")
    assert sw.pending() == ["leaf-01"]  # the canary wave, committed, its timer running
    pending = sw.ask("leaf-01", lambda d: d.get_pending_commit())
    assert pending["status"] == "pending" and pending["message"].startswith(f"lintas run {run_id} ")
    assert 0 < pending["seconds_left"] <= REVERT_IN_S + HEALTH_TIMEOUT_S
    made = sw.checkpoints()["leaf-01"]

    st.arm("deploy.wave_healthy")
    st.restart_until(run_id, "deploy.wave_healthy")
    assert sw.pending() == ["leaf-01"] and sw.checkpoints()["leaf-01"] == made  # adopted, not committed again

    st.arm("verify.before_confirm")
    st.restart_until(run_id, "verify.before_confirm")
    assert sw.pending() == ["leaf-01", "leaf-02"]  # deployed, checked, nothing confirmed

    st.arm("verify.partly_confirmed")
    st.restart_until(run_id, "verify.partly_confirmed")
    assert sw.pending() == ["leaf-02"]  # leaf-01 confirmed on the device, the record does not know

    st.restart()
    run = st.lx.drive(run_id)
    succeeded_and_confirmed(st, sw, run, 10061, ["leaf-01", "leaf-02"])
    assert sw.checkpoints()["leaf-01"] == made
    log = st.log_of(run_id)
    assert "resuming this run's deployment record" in log and "adopted, awaiting verify" in log
    assert "leaf-01: confirmed already (before the restart)" in log
    assert stage(run, "deploy")["deliveries"] >= 4 and stage(run, "verify")["deliveries"] >= 3


def test_crash_mid_host_wave_completes_the_host(st: Stack, sw: Switches, lab_settings: Settings) -> None:
    run_id = st.crash_at("deploy.host_mid_apply", "add uat-new-01 on kvm-uat-01", add_instance("lab.nano"))
    assert NEW["name"] not in domains(lab_settings, "kvm-uat-01")  # OVS converged, the domain not yet
    st.restart()
    run = st.lx.drive(run_id)
    assert run["state"] == "succeeded", run["error"]
    assert "kvm-uat-01" in stage(run, "verify")["summary"]["confirmed"]
    doms = domains(lab_settings, "kvm-uat-01")
    assert doms[NEW["name"]][0] and on_br_int(lab_settings, "kvm-uat-01", NEW["mac"])
    assert "resuming with the snapshot stored before the restart" in st.log_of(run_id)
    assert sw.pending() == []


def test_worker_killed_between_commit_and_confirm_second_worker_resumes(st: Stack, sw: Switches) -> None:
    """Only the deploy worker dies (engine, NATS and the other workers live on); the job is
    redelivered after its AckWait to a second deploy worker, which resumes the record."""
    point = "deploy.committed"
    st.marker(point).unlink(missing_ok=True)
    st.lx.stop()
    st.spawn("engine")
    st.spawn("worker", *[a for k in OTHER_STAGES for a in ("--stage", k)])
    first = st.spawn("worker", "--stage", "deploy", fault=point)
    try:
        run_id = st.lx.new_run(st.lx.push("VNI 10066", add_network("d-66", 66, 10066, ["leaf-01", "leaf-02"])))
        st.run_until(run_id, point)
        assert sw.pending() == ["leaf-01"]
        made = sw.checkpoints()["leaf-01"]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        st.spawn("worker", "--stage", "deploy")
        run = st.lx.drive(run_id)
        succeeded_and_confirmed(st, sw, run, 10066, ["leaf-01", "leaf-02"])
        assert sw.checkpoints()["leaf-01"] == made
        assert stage(run, "deploy")["deliveries"] >= 2
    finally:
        st.stop_parts()
        st.up()


DEAD = "r-dead0000000000ff"  # a run that does not exist: nobody will confirm its commit


def orphan_commit(st: Stack, sw: Switches, monkeypatch: pytest.MonkeyPatch, leaf: str) -> None:
    """A commit left pending in the name of a run that is gone (made here directly on the device):
    the repo head's config for ``leaf`` plus one prefix-list, with a revert timer."""
    monkeypatch.setenv("FABRIC_BGP_PASSWORD", st.lx.env["FABRIC_BGP_PASSWORD"])  # the candidate's secret
    bundle = render_device(load_model(st.lx.work), leaf, Renderer(st.lx.work))
    drv = sw(leaf)
    drv.load_replace_candidate(
        config={**bundle, "frr.conf": bundle["frr.conf"] + "ip prefix-list ORPHAN seq 5 permit 198.51.100.0/24\n"}
    )
    drv.commit_config(message=ops.commit_message(DEAD, "0" * 40, "demo", "main"), revert_in=240)


def test_restart_after_the_timers_expired_ends_rolled_back(
    st: Stack, sw: Switches, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = sw.checkpoints()

    def edit(repo: Path) -> None:
        add_network("d-67", 67, 10067, ["leaf-03"])(repo)
        p = repo / ".lintas" / "pipeline.yaml"  # the repo's own, shorter confirm window (`with: revert_in`)
        p.write_text(
            p.read_text().replace(
                "    timeout: 20m\n", f"    timeout: 20m\n    with: {{revert_in: {SHORT_REVERT_IN_S}}}\n", 1
            )
        )

    run_id = st.crash_at("verify.before_confirm", "VNI 10067 on leaf-03, revert_in 45 s", edit)
    assert sw.pending() == ["leaf-03"]
    # while Lintas is down: a pending commit no run owns appears on leaf-04 (for the next drill);
    # a drift scan (NATS back, `lintas up` still down) tells the two apart
    orphan_commit(st, sw, monkeypatch, "leaf-04")
    asyncio.run(st.nats.start())
    scan = {t["target"]: t for t in json.loads(st.lx.cli("drift", "--json", check=False).stdout)["targets"]}
    assert scan["leaf-04"]["state"] == "pending_orphan" and scan["leaf-04"]["pending_run"] == DEAD, scan["leaf-04"]
    assert 0 < scan["leaf-04"]["pending_seconds_left"] <= 240
    assert scan["leaf-03"]["state"] != "pending_orphan" and scan["leaf-03"]["pending_run"] == run_id  # live run
    wait_for("leaf-03 reverts by its timer", lambda: sw.pending() == ["leaf-04"], SHORT_REVERT_IN_S + 30)
    st.up()
    run = st.lx.drive(run_id)
    assert run["state"] == "rolled_back", run["error"]  # the truth: the change did not stick
    assert "did not stick on leaf-03" in run["error"] and "10067" in run["error"]  # at once, naming what was lost
    assert stage(run, "rollback")["summary"]["restored"] == ["leaf-03"]
    assert sw.pending() == ["leaf-04"] and sw.remote_vteps("leaf-03", 10067) is None
    assert {n: c for n, c in sw.checkpoints().items() if n != "leaf-04"} == {
        n: c for n, c in before.items() if n != "leaf-04"
    }


def test_a_pending_commit_no_run_owns_is_an_alarm_and_never_adopted(st: Stack, sw: Switches) -> None:
    """leaf-04 holds the orphan of the drill before; a run that must change leaf-04 fails on it
    (never adopts it, never undoes it), and remediation rolls it back and re-applies the head."""
    run = st.lx.push_and_drive("VNI 10068 on leaf-04", add_network("d-68", 68, 10068, ["leaf-04"]))
    deploy = stage(run, "deploy")
    assert run["state"] in ("failed", "rolled_back") and deploy["state"] == "failed"
    assert "leaf-04" in deploy["error"] and DEAD in deploy["error"], deploy["error"]  # the device and the reason
    left = sw.ask("leaf-04", lambda d: d.get_pending_commit())
    assert left is not None and left["message"].startswith(f"lintas run {DEAD} ")  # never adopted nor undone
    assert sw.pending() == ["leaf-04"]  # leaf-03 (this run's canary) restored by rollback

    fixed = st.lx.cli("drift", "--remediate", "--json", check=False)
    runs = json.loads(fixed.stdout)["remediation_runs"]
    assert len(runs) == 1 and f"leaf-04: orphaned commit of run {DEAD}: rolled_back" in " ".join(fixed.stderr.split())
    st.lx.seen.add(runs[0])
    again = st.lx.drive(runs[0])
    assert again["state"] == "succeeded", again["error"]
    assert sorted(stage(again, "verify")["summary"]["confirmed"]) == ["leaf-03", "leaf-04"]
    assert sw.pending() == []
    assert sw.remote_vteps("leaf-03", 10067) == [] and sw.remote_vteps("leaf-04", 10068) == []
    assert "ORPHAN" not in sw.ask("leaf-04", lambda d: d.get_config("running"))["running"]


def test_after_every_timer_nothing_has_drifted(st: Stack, sw: Switches) -> None:
    assert sw.pending() == []  # every timer has fired or been stopped by a confirm
    scan = st.lx.cli("drift", "--json", check=False)
    states = {t["target"]: t["state"] for t in json.loads(scan.stdout)["targets"]}
    assert scan.returncode == 0 and set(states.values()) == {"in_sync"}, states
    assert set(LEAVES) <= set(states)
