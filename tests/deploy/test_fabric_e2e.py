"""End to end on the real lab: `git push` -> `lintas up` -> deploy -> verify -> confirm / rollback.

One module, one lab (2 spines + 4 leaves: FRR in network namespaces, reached over SSH),
one nats-server and one `lintas up` process (engine, workers, API) against it. The tests
run in order and each leaves the fabric at its repo's last-known-good state:

1. the first deploy of the template, then adding a VNI: ``succeeded``, the VNI is on its
   leaves with exactly the right remote VTEPs;
2. the same commit again (``lintas trigger``) and a commit that changes no config: no
   device is committed to (their checkpoints do not move);
3. a change that passes validation and policy but breaks the fabric (a repo-local template
   override that filters leaf-04's EVPN routes): ``rolled_back``, with the failing checks
   listed, and BGP/EVPN as before afterwards; then an explicit VTEP outside the pool, which
   changes every switch's prefix-list: one approval, all six switches deployed and verified;
4. the management path to one leaf cut in the middle of the deploy: the run ends
   ``failed`` naming that leaf, and the leaf's device-side timer restores it by itself;
5. `lintas up` SIGKILLed after the commits and before verify confirms them: the devices
   revert by timer, and the restarted engine ends the run ``rolled_back``;
6. (after 2) an FRR setting changed by hand: `lintas drift` names the device and the exact
   line, `--remediate` re-applies it through a normal run; a commit that fails validation
   leaves every device ``behind`` its branch head.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bench.breakage import write_evpn_filter
from bench.common import init_without_twin
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from lintas.workers.drivers.frr.driver import FrrDriver
from lintas.workers.drivers.frr.errors import FrrConnectionError
from lintas.workers.lab import PrerequisiteError, find_tools, lab_device_facts, lab_down, lab_up
from lintas.workers.lab.topology import mgmt_veth_name
from tests.conftest import PLUGINS, ROOT

pytestmark = [pytest.mark.integration]

TEMPLATE = ROOT / "gitops-repo-template"
SWITCHES = ["spine-01", "spine-02", "leaf-01", "leaf-02", "leaf-03", "leaf-04"]
LEAVES = [s for s in SWITCHES if s.startswith("leaf")]
HOSTS = ["kvm-uat-01", "osc-01"]
VTEP = {"leaf-01": "10.250.1.11", "leaf-02": "10.250.1.12", "leaf-03": "10.250.1.13", "leaf-04": "10.250.1.14"}
REVERT_IN_S = 45
HEALTH_TIMEOUT_S = 20
VERIFY_TIMEOUT_S = 25
RUN_TIMEOUT_S = 300.0
DRIFT_INTERVAL_S = 30


@dataclass
class Env:
    home: Path
    work: Path
    env: dict[str, str]
    nats: EmbeddedNats
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    seen: set[str] = field(default_factory=set)
    approvals: dict[str, int] = field(default_factory=dict)

    # -- processes -------------------------------------------------------------------------

    def start(self) -> None:
        fh = open(self.log, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lintas.engine.cli.main", "up"], env=self.env, stdout=fh, stderr=subprocess.STDOUT
        )
        fh.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"lintas up exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.cli("runs", "--json", check=False).returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"lintas up not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lintas.engine.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def init(self, *, twin: bool = False) -> None:
        """`lintas init` of the demo repo (its first commit pushed: the first run).

        ``twin=False`` (the modules about deploy, verify and rollback on production, which share
        this fixture): the template's pipeline without its ``twin`` stage, ``deploy`` needing what
        the twin needed. Their breaking changes must reach production (a twin would stop them
        first), and a twin on each of their ~10 switch-changing runs would add about 20 s each.
        tests/deploy/test_twin_e2e.py runs the template's pipeline as it is."""
        if twin:
            self.cli("init", str(self.work))
        else:
            init_without_twin(self.work, self.env)

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.work, env=self.env, capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()

    # -- runs ------------------------------------------------------------------------------

    def runs(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("runs", "--json", "--limit", "500").stdout))

    def new_run(self, sha: str, timeout: float = 30.0) -> str:
        """The run for ``sha`` that no earlier call returned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = [r for r in self.runs() if r["sha"] == sha and r["run_id"] not in self.seen]
            if fresh:
                self.seen.add(fresh[0]["run_id"])
                return str(fresh[0]["run_id"])
            time.sleep(0.2)
        raise AssertionError(f"no new run for {sha[:8]} after {timeout:g} s")

    def show(self, run_id: str) -> dict[str, Any]:
        return dict(json.loads(self.cli("show", run_id, "--json").stdout))

    def drive(self, run_id: str, timeout: float = RUN_TIMEOUT_S) -> dict[str, Any]:
        """Approve the run whenever it waits for approval (the operator); return it when terminal.
        ``approvals[run_id]`` counts the times the run came to wait for one."""
        deadline = time.monotonic() + timeout
        waiting = False
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.returncode is None and self.proc.poll() is not None:
                # died, and not by kill()/stop() (they reap it): no run moves on any more
                raise AssertionError(f"lintas up died (exit {self.proc.returncode})\n" + self.stuck(run_id, 0))
            run = self.show(run_id)
            if run["state"] == "waiting_approval":
                if not waiting:
                    self.approvals[run_id] = self.approvals.get(run_id, 0) + 1
                waiting = True
                self.cli("approve", run_id, check=False)
            elif run["state"] in ("succeeded", "failed", "rolled_back", "canceled", "superseded"):
                return run
            else:
                waiting = False
            time.sleep(0.5)
        raise AssertionError(self.stuck(run_id, timeout))

    def stuck(self, run_id: str, timeout: float) -> str:
        """Why a run is not terminal: its stages, its log and the tail of `lintas up`'s own log."""
        run = self.show(run_id)
        stages = "\n".join(
            f"  {s['name']}: {s['state']} (attempts {s['attempts']}, deliveries {s['deliveries']}, "
            f"worker {s['worker']}, started {s['started_at']})"
            for s in run["stages"]
        )
        logs = self.cli("logs", run_id, check=False).stdout[-4000:]
        return (
            f"run {run_id} not terminal after {timeout:g} s: {run['state']}\n{stages}\n"
            f"-- its log --\n{logs}\n-- lintas up --\n{self.log.read_text(errors='replace')[-6000:]}"
        )

    def push(self, message: str, edit: Callable[[Path], None] | None = None) -> str:
        if edit is not None:
            edit(self.work)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        self.git("push", "-q", "origin", "HEAD:main")
        return self.git("rev-parse", "HEAD")

    def push_and_drive(self, message: str, edit: Callable[[Path], None] | None = None) -> dict[str, Any]:
        return self.drive(self.new_run(self.push(message, edit)))


def stage(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in run["stages"] if s["name"] == name)


# -- the lab and the switches, read directly (not through Lintas) ----------------------------


class Switches:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._open: dict[str, FrrDriver] = {}

    def __call__(self, name: str) -> FrrDriver:
        d = self._open.get(name)
        if d is not None and d.is_alive()["is_alive"]:
            return d
        f = lab_device_facts(self._settings, name)
        d = FrrDriver(
            f.mgmt_ip,
            f.username,
            "",
            optional_args={"key_file": str(f.key_file), "known_hosts": str(f.known_hosts), "port": f.ssh_port},
        )
        d.open()
        self._open[name] = d
        return d

    def close(self) -> None:
        for d in self._open.values():
            d.close()

    def ask(self, name: str, fn: Callable[[FrrDriver], Any]) -> Any:
        """``fn(driver)``, reconnecting once: a session may have died with a cut management path."""
        try:
            return fn(self(name))
        except FrrConnectionError:
            self._open.pop(name, None)
            return fn(self(name))

    def checkpoints(self) -> dict[str, str | None]:
        return {n: (self.ask(n, lambda d: d.get_kernel_facts())["applied"] or {}).get("checkpoint") for n in SWITCHES}

    def pending(self) -> list[str]:
        return [n for n in SWITCHES if self.ask(n, lambda d: d.has_pending_commit())]

    def fabric_up(self) -> bool:
        for n in SWITCHES:
            peers = self.ask(n, lambda d: d.get_bgp_neighbors())["global"]["peers"]
            if not peers or not all(p["is_up"] and "l2vpn_evpn" in p["address_family"] for p in peers.values()):
                return False
        return True

    def remote_vteps(self, leaf: str, vni: int) -> list[str] | None:
        v = self.ask(leaf, lambda d: d.get_evpn_vnis()).get(vni)
        return None if v is None else list(v["remote_vteps"])


def by_hand(lab_settings: Settings, switch: str, *vtysh: str) -> None:
    """An operator's ``vtysh -c`` commands on a lab switch, over its management SSH (not through Lintas)."""
    f = lab_device_facts(lab_settings, switch)
    ssh = ["ssh", "-i", str(f.key_file), "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={f.known_hosts}"]
    ssh += ["-o", "BatchMode=yes", "-p", str(f.ssh_port), f"root@{f.mgmt_ip}"]
    subprocess.run([*ssh, "vtysh " + " ".join(f"-c '{c}'" for c in vtysh)], check=True, capture_output=True, timeout=30)


def wait_for(what: str, cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(1.0)
    raise AssertionError(f"{what}: not within {timeout:g} s")


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    try:
        find_tools()
    except PrerequisiteError as exc:
        pytest.fail(f"lab prerequisites missing (run scripts/setup.sh): {exc}")
    settings = Settings(home=tmp_path_factory.mktemp("e2e") / "home")
    try:
        asyncio.run(lab_up(settings, TEMPLATE))
        yield settings
    finally:
        asyncio.run(lab_down(settings))


@pytest.fixture(scope="module")
def sw(lab_settings: Settings) -> Iterator[Switches]:
    s = Switches(lab_settings)
    yield s
    s.close()


def up_stack(lab_settings: Settings, tmp_path_factory: pytest.TempPathFactory, *, twin: bool = False) -> Iterator[Env]:
    """A nats-server and a `lintas up` against the lab, with the demo repo initialised (its first
    commit pushed); ``twin``: the template's pipeline as it is, with its twin stage (:meth:`Env.init`)."""
    tmp = tmp_path_factory.mktemp("e2e-run")
    nats = EmbeddedNats(tmp / "nats", free_port())
    asyncio.run(nats.start())
    env = dict(os.environ)
    env.update(
        LINTAS_HOME=str(lab_settings.home),
        LINTAS_NATS_URL=nats.url,
        LINTAS_API_ADDR=f"127.0.0.1:{free_port()}",
        FABRIC_BGP_PASSWORD="Lx-e2e-" + os.urandom(6).hex(),
        LINTAS_DEPLOY__REVERT_IN_S=str(REVERT_IN_S),
        LINTAS_DEPLOY__HEALTH_TIMEOUT_S=str(HEALTH_TIMEOUT_S),
        LINTAS_DEPLOY__VERIFY_TIMEOUT_S=str(VERIFY_TIMEOUT_S),
        LINTAS_DEPLOY__LEASE_TTL_S="60",
        LINTAS_DEPLOY__DOMAIN_SHUTDOWN_TIMEOUT_S="3",  # lab guests have no OS to answer ACPI
        LINTAS_JOB_ACK_WAIT_S="10",
        LINTAS_TICK_S="0.5",
        LINTAS_DRIFT_INTERVAL_S=str(DRIFT_INTERVAL_S),  # the periodic scan runs beside every deploy here
        PYTHONPATH=os.pathsep.join([str(PLUGINS), str(ROOT), env.get("PYTHONPATH", "")]),
        GIT_AUTHOR_NAME="Net Ops",
        GIT_AUTHOR_EMAIL="netops@example.invalid",
        GIT_COMMITTER_NAME="Net Ops",
        GIT_COMMITTER_EMAIL="netops@example.invalid",
    )
    e = Env(home=lab_settings.home, work=tmp / "demo", env=env, nats=nats, log=tmp / "up.log")
    try:
        e.start()
        e.init(twin=twin)
        yield e
    finally:
        e.stop()
        asyncio.run(nats.stop())


@pytest.fixture(scope="module")
def lx(lab_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from up_stack(lab_settings, tmp_path_factory)  # the template's pipeline without the twin stage (Env.init)


def add_network(name: str, vlan: int, vni: int, leaves: list[str]) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        p = repo / "fabric" / "tenants.yaml"
        p.write_text(
            p.read_text() + f"\n  - name: {name}\n    vrf: UAT\n    vlan: {vlan}\n    vni: {vni}\n"
            f"    gateway: 10.30.{vlan}.1/24\n    mtu: 9000\n    leaves: [{', '.join(leaves)}]\n"
        )

    return edit


def set_vtep(leaf: str, vtep: str) -> Callable[[Path], None]:
    def edit(repo: Path) -> None:
        p = repo / "fabric" / "devices.yaml"
        text, n = re.subn(
            rf"(  - name: {leaf}\n(?:    .*\n)*?    id: \d+\n)", rf"\g<1>    vtep_ip: {vtep}\n", p.read_text()
        )
        assert n == 1
        p.write_text(text)

    return edit


def filter_evpn_of(leaf: str) -> Callable[[Path], None]:
    """A repo-local override of the built-in FRR template: ``leaf`` denies every EVPN route it would send."""
    return lambda repo: write_evpn_filter(repo, leaf)


# -- the tests, in order --------------------------------------------------------------------------


def test_first_deploy_then_a_new_vni_succeeds(lx: Env, sw: Switches) -> None:
    seed = lx.git("rev-parse", "HEAD")
    first = lx.drive(lx.new_run(seed, timeout=60))
    assert first["state"] == "succeeded", first["error"]
    dep = stage(first, "deploy")["summary"]
    assert sorted(dep["committed"]) == sorted(SWITCHES + HOSTS) and dep["waves"][:2] == [["spine-01"], ["spine-02"]]
    assert dep["waves"][2] == ["leaf-01"]  # the canary, alone
    assert dep["waves"][-1] == HOSTS  # hypervisors last: never in the wave of their leaf
    assert stage(first, "verify")["summary"]["confirmed"] == sorted(SWITCHES + HOSTS)
    assert sw.pending() == [] and sw.fabric_up()

    run = lx.push_and_drive(
        "add VNI 10030 on leaf-01 and leaf-02", add_network("uat-db", 30, 10030, ["leaf-01", "leaf-02"])
    )
    assert run["state"] == "succeeded", run["error"]
    assert sorted(stage(run, "deploy")["summary"]["committed"]) == ["leaf-01", "leaf-02"]
    assert sw.remote_vteps("leaf-01", 10030) == [VTEP["leaf-02"]]
    assert sw.remote_vteps("leaf-02", 10030) == [VTEP["leaf-01"]]
    assert sw.remote_vteps("leaf-03", 10030) is None
    assert sw.remote_vteps("leaf-03", 10010) == [VTEP["leaf-01"], VTEP["leaf-02"], VTEP["leaf-04"]]
    verify = stage(run, "verify")["summary"]
    assert verify["totals"]["failed"] == 0 and verify["totals"]["passed"] > 100
    assert sw.pending() == []


def test_the_same_commit_twice_changes_nothing(lx: Env, sw: Switches) -> None:
    before = sw.checkpoints()
    head = lx.git("rev-parse", "HEAD")
    lx.cli("trigger", "--repo", "demo", "--ref", "main", "--sha", head)
    again = lx.drive(lx.new_run(head))
    assert again["state"] == "succeeded", again["error"]
    assert stage(again, "deploy")["summary"]["committed"] == []
    docs = lx.push_and_drive("docs only", lambda repo: (repo / "README.md").write_text("# demo\n"))
    assert docs["state"] == "succeeded", docs["error"]
    assert stage(docs, "deploy")["summary"]["committed"] == []
    assert sw.checkpoints() == before  # no device was committed to


def test_drift_is_reported_exactly_and_remediated_through_the_pipeline(
    lx: Env, sw: Switches, lab_settings: Settings
) -> None:
    changed_at = time.time()
    by_hand(lab_settings, "leaf-02", "conf t", "ip prefix-list HAND-MADE seq 5 permit 198.51.100.0/24")

    def periodic_scan_saw_it() -> bool:  # `lintas up`'s own scan, not one we ask for
        got = lx.cli("drift", "--cached", "--json", check=False)
        if got.returncode == 2:
            return False
        rep = json.loads(got.stdout)
        return (
            datetime.fromisoformat(rep["checked_at"]).timestamp() > changed_at
            and {t["target"]: t["state"] for t in rep["targets"]}.get("leaf-02") == "drifted"
        )

    wait_for("the periodic drift scan reports leaf-02", periodic_scan_saw_it, DRIFT_INTERVAL_S * 2 + 30)
    scan = lx.cli("drift", "--json", check=False)
    assert scan.returncode == 1, scan.stderr
    report = {t["target"]: t for t in json.loads(scan.stdout)["targets"]}
    assert report["leaf-02"]["state"] == "drifted"
    assert any("198.51.100.0/24" in line for line in report["leaf-02"]["differences"])  # the exact difference
    assert all(report[n]["state"] == "in_sync" for n in SWITCHES if n != "leaf-02")
    assert (
        "198.51.100.0/24" in sw.ask("leaf-02", lambda d: d.get_config("running"))["running"]
    )  # a scan changes nothing

    fixed = lx.cli("drift", "--remediate", "--json", check=False)
    runs = json.loads(fixed.stdout)["remediation_runs"]
    assert len(runs) == 1
    lx.seen.add(runs[0])
    run = lx.drive(runs[0])
    assert run["state"] == "succeeded", run["error"]
    assert stage(run, "deploy")["summary"]["committed"] == ["leaf-02"]  # only the drifted device
    assert "198.51.100.0/24" not in sw.ask("leaf-02", lambda d: d.get_config("running"))["running"]
    again = lx.cli("drift", "--json", check=False)
    assert again.returncode == 0, again.stdout
    assert {t["state"] for t in json.loads(again.stdout)["targets"]} == {"in_sync"}

    # a commit that never reaches the switches (invalid model): every device is behind its branch
    bad = lx.push_and_drive("broken YAML", lambda repo: (repo / "fabric" / "links.yaml").write_text("links: [\n"))
    assert bad["state"] == "failed" and stage(bad, "validate")["state"] == "failed"
    behind = json.loads(lx.cli("drift", "--json", check=False).stdout)["targets"]
    assert {t["state"] for t in behind} == {"behind"} and {t["head_commit"] for t in behind} == {bad["sha"]}
    back = lx.push_and_drive("fix the YAML", lambda repo: lx.git("checkout", "HEAD~1", "--", "fabric/links.yaml"))
    assert back["state"] == "succeeded", back["error"]
    assert {t["state"] for t in json.loads(lx.cli("drift", "--json", check=False).stdout)["targets"]} == {"in_sync"}


def test_a_change_that_breaks_the_fabric_is_rolled_back(lx: Env, sw: Switches) -> None:
    """Valid for the model, fatal for the fabric: a repo-local template override that filters
    every EVPN route leaf-04 advertises. Only leaf-04's config changes; verify finds its VTEP
    missing from every other leaf's VNIs, and rollback restores it."""
    before = sw.checkpoints()
    run = lx.push_and_drive("leaf-04: filter its EVPN routes (template override)", filter_evpn_of("leaf-04"))
    assert run["state"] == "rolled_back", run["error"]
    assert stage(run, "render")["summary"]["changed"] == ["leaf-04"]
    assert VTEP["leaf-04"] in run["error"] and "vni" in run["error"]  # the failing checks are listed
    assert stage(run, "verify")["state"] == "failed" and stage(run, "rollback")["state"] == "succeeded"
    rb = stage(run, "rollback")["summary"]
    assert rb["restored"] == ["leaf-04"] and rb["totals"]["failed"] == 0
    assert sw.pending() == [] and sw.fabric_up()
    assert sw.remote_vteps("leaf-01", 10010) == [VTEP["leaf-02"], VTEP["leaf-03"], VTEP["leaf-04"]]
    assert sw.checkpoints()["leaf-01"] == before["leaf-01"]
    # the repo is put back: nothing left to deploy, the fabric was never at the broken commit
    back = lx.push_and_drive("drop the template override", lambda repo: lx.git("rm", "-q", "-r", "templates/frr"))
    assert back["state"] == "succeeded" and stage(back, "deploy")["summary"]["committed"] == []


def test_an_explicit_vtep_reaches_every_switch_with_one_approval(lx: Env, sw: Switches) -> None:
    """Issue 12's regression: an explicit VTEP outside the pool changes every switch's
    PL-LOOPBACKS-EVPN-OVERLAY. The run renders, plans, asks approval for and deploys all six
    switches (the spines included), and verify finds the new VTEP on every leaf."""
    moved = "10.99.1.14"
    sha = lx.push("leaf-04: move its VTEP out of the pool", set_vtep("leaf-04", moved))
    run_id = lx.new_run(sha)
    run = lx.drive(run_id)
    assert run["state"] == "succeeded", run["error"]
    assert lx.approvals.get(run_id) == 1  # one approval: the change touches the spines
    render = stage(run, "render")["summary"]
    assert sorted(render["changed"]) == sorted(SWITCHES), render
    assert any("spine-01, spine-02" in r for r in run["approval_reasons"])
    assert sorted(stage(run, "deploy")["summary"]["committed"]) == sorted(SWITCHES)
    assert sw.pending() == [] and sw.fabric_up()
    assert sorted(sw.remote_vteps("leaf-01", 10010) or []) == sorted([VTEP["leaf-02"], VTEP["leaf-03"], moved])
    # `lintas plan` agrees with the run: after the deploy, nothing is left to change
    planned = lx.cli("plan", str(lx.work)).stdout
    assert "0 to change" in planned and "0 new" in planned, planned[-400:]
    back = lx.push_and_drive(
        "leaf-04: VTEP back in the pool", lambda repo: lx.git("checkout", "HEAD~1", "--", "fabric/devices.yaml")
    )
    assert back["state"] == "succeeded", back["error"]
    assert sw.remote_vteps("leaf-01", 10010) == [VTEP["leaf-02"], VTEP["leaf-03"], VTEP["leaf-04"]]


def test_management_cut_mid_deploy_leaf_reverts_by_its_timer(lx: Env, sw: Switches) -> None:
    pending_marker = Path("/run/lintas-lab/lx-leaf-03/etc/lintas/pending")
    veth = mgmt_veth_name("leaf-03")
    sha = lx.push("VNI 10040 on every leaf", add_network("uat-batch", 40, 10040, LEAVES))
    run_id = lx.new_run(sha)
    deadline = time.monotonic() + 120
    cut = False
    try:
        while time.monotonic() < deadline and not cut:
            if lx.show(run_id)["state"] == "waiting_approval":
                lx.cli("approve", run_id)
            if pending_marker.exists():  # leaf-03 holds an unconfirmed commit: cut it off now
                subprocess.run(["ip", "link", "set", veth, "down"], check=True)
                cut = True
            time.sleep(0.05)
        assert cut, "leaf-03 never got its commit"
        run = lx.drive(run_id)
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    assert run["state"] == "failed", run["error"]
    assert "leaf-03" in run["error"] and "ROLLBACK" in run["error"]  # loud, naming the device
    rb = stage(run, "rollback")["summary"]
    assert "leaf-03" in rb["attention"] and "leaf-01" in rb["restored"]
    # no help from Lintas: the leaf's own timer restores it
    wait_for("leaf-03 reverts by its timer", lambda: "leaf-03" not in sw.pending(), REVERT_IN_S + 60)
    assert sw.pending() == []
    wait_for("fabric converges", sw.fabric_up, 60)
    assert all(sw.remote_vteps(leaf, 10040) is None for leaf in LEAVES)
    # put the repo back; nothing to deploy
    back = lx.push_and_drive("drop VNI 10040", lambda repo: lx.git("checkout", "HEAD~1", "--", "fabric/tenants.yaml"))
    assert back["state"] == "succeeded", back["error"]


def test_engine_killed_before_confirm_devices_revert_and_run_ends_rolled_back(lx: Env, sw: Switches) -> None:
    before = sw.checkpoints()
    hold = (
        "\n  hold:                     # test only: a window between the commits and verify\n"
        "    uses: t-sleep\n    needs: [deploy]\n    with: {seconds: 4}\n"
    )

    def edit(repo: Path) -> None:
        p = repo / ".lintas" / "pipeline.yaml"
        text = p.read_text().replace("  verify:", hold.strip("\n") + "\n  verify:", 1)
        p.write_text(text.replace("    needs: [deploy]\n    timeout: 10m", "    needs: [hold]\n    timeout: 10m", 1))
        add_network("uat-kill", 50, 10050, ["leaf-01", "leaf-02"])(repo)

    sha = lx.push("VNI 10050, engine dies before confirm", edit)
    run_id = lx.new_run(sha)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = lx.show(run_id)
        if run["state"] == "waiting_approval":
            lx.cli("approve", run_id)
        if stage(run, "hold")["state"] == "running":
            break
        time.sleep(0.1)
    assert stage(lx.show(run_id), "deploy")["state"] == "succeeded"
    assert sorted(sw.pending()) == ["leaf-01", "leaf-02"]
    lx.kill()  # SIGKILL: nothing is confirmed, nothing is rolled back by Lintas
    wait_for("both leaves revert by their timers", lambda: sw.pending() == [], REVERT_IN_S + HEALTH_TIMEOUT_S + 60)
    assert sw.remote_vteps("leaf-01", 10050) is None
    lx.start()
    run = lx.drive(run_id)
    assert run["state"] == "rolled_back", run["error"]  # the true outcome: the change did not stick
    assert "10050" in run["error"]
    rb = stage(run, "rollback")["summary"]
    assert sorted(rb["restored"]) == ["leaf-01", "leaf-02"] and rb["totals"]["failed"] == 0
    assert sw.pending() == [] and sw.fabric_up()
    assert sw.checkpoints() == before  # every switch back at its last confirmed commit
