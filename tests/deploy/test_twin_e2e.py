"""Issue 18 end to end on the real lab: `git push` -> `lintas up` -> ... -> twin -> deploy -> verify,
with the template's own pipeline (its twin stage before deploy).

One module, one lab (2 spines + 4 leaves), one nats-server and one `lintas up`
(tests/deploy/test_fabric_e2e.py's helpers and fixtures). In order:

1. the first push (day 0: every switch and host new, spines included, so the built-in policy
   ``twin_required`` demands the twin; its hosts are built in it too, deployed and checked) and a
   one-VNI change each pass their twin and deploy;
2. a valid-but-breaking change (a repo-local template override filtering leaf-04's EVPN routes)
   fails the run at ``twin``: deploy never starts, production is proven untouched (every switch's
   running config byte-identical, nothing pending, no config drift, the deployed commit unchanged,
   no run lease in KV); putting the repo back changes no switch: nothing to prove, no twin built;
3. an OVS setting the host cannot apply (``datapath_type: system`` on kvm-uat-01, no kernel
   module) fails the run at ``twin`` (the host built in the twin with its leaf): production's host
   keeps its netdev datapath and domains, no drift, the deployed commits unchanged, no lease;
4. a leaf change that cuts its host's uplink (a template override shutting leaf-01's host port
   swp1; kvm-uat-01's own configs unchanged) fails at ``twin``: the change reaches the host, so the
   twin builds it with leaf-01, and its uplink probe to the tunnel network's gateway fails;
   production untouched;
5. `lintas up` SIGKILLed while its twin is being built leaves a dead twin; the restarted stack
   redelivers the stage, whose next twin sweeps the dead one, and the run ends.

After every run no twin is left (`lintas twin list`, no ``lt*`` namespace, no stray daemon).
Runs against the production lab: under ``flock /tmp/lintas-lab.lock``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import NoKeysError

from bench.breakage import write_shut_port
from lintas.engine import subjects as S
from lintas.engine.bus import connect
from lintas.engine.settings import Settings
from lintas.workers.hosts import ovsdb
from lintas.workers.hosts.libvirt_conn import open_conn
from lintas.workers.lab import lab_host_facts
from lintas.workers.twin.gate import NOTHING_TO_PROVE
from tests.deploy import test_fabric_e2e as e2e
from tests.deploy.test_fabric_e2e import SWITCHES, VTEP, Env, Switches, add_network, filter_evpn_of, stage
from tests.lab.test_twin_stage import assert_no_twin_left

pytestmark = [pytest.mark.integration]

HOSTS = ["kvm-uat-01", "osc-01"]

lab_settings, sw = e2e.lab_settings, e2e.sw  # one lab per module


@pytest.fixture(scope="module")
def lx(lab_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from e2e.up_stack(lab_settings, tmp_path_factory, twin=True)  # the template's pipeline, twin included


def no_twin_left(lx: Env) -> None:
    """Nothing of any twin on this machine: no record (`lintas twin list`), namespace, mount or daemon."""
    assert json.loads(lx.cli("twin", "list", "--json").stdout) == []
    assert_no_twin_left()


def twin_of(lx: Env, run: dict[str, Any]) -> dict[str, Any]:
    """The run's twin stage, checked to have a report that `lintas show` prints (its times printed: `-s`)."""
    t = stage(run, "twin")
    print(
        f"\n{(run.get('message') or '').splitlines()[:1]}: run {run['state']} in {run.get('duration_s')} s; twin {t['state']} "
        f"in {t.get('duration_s')} s {t['summary'].get('timings') or t['summary'].get('skipped')}; load {os.getloadavg()}"
    )
    if t["summary"].get("report"):
        shown = lx.cli("show", run["run_id"], "--no-plan").stdout
        assert "twin (stage twin, " + t["summary"]["report"] in shown, shown[-2000:]
    return t


def running(sw: Switches) -> dict[str, str]:
    return {n: sw.ask(n, lambda d: d.get_config("running"))["running"] for n in SWITCHES}


def drift(lx: Env) -> dict[str, dict[str, Any]]:
    got = lx.cli("drift", "--json", check=False)
    assert got.returncode in (0, 1), got.stderr
    return {t["target"]: t for t in json.loads(got.stdout)["targets"]}


async def _run_leases(env: Env) -> list[str]:
    """Every lease a run holds in KV (the engine's leadership and a drift scan's are not runs')."""
    settings = Settings(home=env.home, nats_url=env.nats.url)
    nc = await connect(settings, env.nats.url, name="twin-e2e")
    try:
        kv = await nc.jetstream().key_value(S.LOCKS_BUCKET)
        try:
            keys = list(await kv.keys())
        except NoKeysError:
            return []
        owners = []
        for k in keys:
            entry = await kv.get(k)
            if entry.value:
                owner = str(json.loads(entry.value).get("owner", ""))
                if owner.startswith("run:"):
                    owners.append(f"{k}: {owner}")
        return owners
    finally:
        await nc.close()


def test_the_first_push_and_a_good_change_pass_the_twin_and_deploy(lx: Env, sw: Switches) -> None:
    first_id = lx.new_run(lx.git("rev-parse", "HEAD"), timeout=60)
    first = lx.drive(first_id)
    assert first["state"] == "succeeded", first["error"]
    t = twin_of(lx, first)["summary"]
    assert t["passed"] and t["switches_proven"] and t["start"] == "day0"
    assert t["required"] and any("[lintas.builtin.twin_required]" in r for r in t["required_by"])  # spines: day 0
    # the hosts changed too: built in the twin with their leaves, deployed and checked there: proven,
    # nothing held for an approval
    assert t["hosts"] == HOSTS and set(t["committed"]) == set(SWITCHES) | set(HOSTS)
    assert t["proven"] and t["hosts_unproven"] == [] and t["approval"] == []
    assert not any("not built in twins" in r for r in first.get("approval_reasons") or [])
    assert sorted(stage(first, "deploy")["summary"]["committed"]) == sorted([*SWITCHES, *HOSTS])
    assert sw.pending() == [] and sw.fabric_up()
    no_twin_left(lx)

    run = lx.push_and_drive(
        "add VNI 10030 on leaf-01 and leaf-02", add_network("uat-db", 30, 10030, ["leaf-01", "leaf-02"])
    )
    assert run["state"] == "succeeded", run["error"]
    twin = twin_of(lx, run)
    t = twin["summary"]
    assert twin["state"] == "succeeded" and t["proven"] and t["passed"] and t["start"] == "last_deployed"
    assert not t["required"]  # two leaves: no policy asks, the pipeline does not either
    assert {"leaf-01", "leaf-02"} <= set(t["switches"]) and sorted(t["committed"]) == ["leaf-01", "leaf-02"]
    assert t["timings"]["total_s"] > 0 and t["totals"]["failed"] == 0
    assert sorted(stage(run, "deploy")["summary"]["committed"]) == ["leaf-01", "leaf-02"]
    assert sw.remote_vteps("leaf-01", 10030) == [VTEP["leaf-02"]]  # the change is on production
    assert sw.remote_vteps("leaf-02", 10030) == [VTEP["leaf-01"]]
    assert sw.pending() == []
    no_twin_left(lx)


def test_a_breaking_change_fails_at_the_twin_and_production_is_untouched(lx: Env, sw: Switches) -> None:
    before, marks = running(sw), sw.checkpoints()
    deployed = {n: d["deployed_commit"] for n, d in drift(lx).items()}
    run = lx.push_and_drive("leaf-04: filter its EVPN routes (template override)", filter_evpn_of("leaf-04"))
    assert run["state"] == "failed", run["error"]
    assert run["error"].startswith("stage twin failed: twin:") and VTEP["leaf-04"] in run["error"]
    twin = twin_of(lx, run)
    assert twin["state"] == "failed" and not twin["summary"]["proven"]
    assert any(c["device"] != "leaf-04" and c["check"] == "vni" for c in twin["summary"]["checks"])
    dep = stage(run, "deploy")
    assert dep["state"] == "skipped" and dep["started_at"] is None and dep["attempts"] == 0  # never started
    assert stage(run, "rollback")["state"] == "skipped"  # nothing to roll back
    # production proven untouched
    assert running(sw) == before  # byte-identical running configs
    assert sw.checkpoints() == marks and sw.pending() == []
    now = drift(lx)
    for n in SWITCHES:  # no drift; the branch head (the broken commit) was never applied: "behind"
        assert now[n]["differences"] == [] and not now[n]["pending_commit"], now[n]
        assert now[n]["deployed_commit"] == deployed[n]
        assert (now[n]["state"], now[n]["head_commit"]) == ("behind", run["sha"]), now[n]
    assert asyncio.run(_run_leases(lx)) == []
    assert sw.remote_vteps("leaf-01", 10010) == [VTEP["leaf-02"], VTEP["leaf-03"], VTEP["leaf-04"]]
    no_twin_left(lx)

    # the repo put back: its configs are what production runs; no switch changes, no twin is built
    def drop_override(repo: Path) -> None:
        lx.git("rm", "-q", "-r", "templates/frr")

    back = lx.push_and_drive("drop the template override", drop_override)
    assert back["state"] == "succeeded", back["error"]
    t = twin_of(lx, back)["summary"]
    assert (t["skipped"], t["proven"], t["switches"]) == (NOTHING_TO_PROVE, False, [])
    assert stage(back, "deploy")["summary"]["committed"] == []
    assert {d["state"] for n, d in drift(lx).items() if n in SWITCHES} == {"in_sync"}
    assert running(sw) == before
    no_twin_left(lx)


def host_datapaths(lx: Env, host: str) -> dict[str, str]:
    """Production host ``host``'s OVS bridges and their datapath types (through its own db.sock)."""
    f = lab_host_facts(Settings(home=lx.home), host)
    with ovsdb.session(f.ovsdb_socket) as api:
        return {b.name: b.datapath_type for b in ovsdb.read(api).bridges.values()}


def host_domains(lx: Env, host: str) -> dict[str, bool]:
    """Production host ``host``'s libvirt domains: name -> running."""
    f = lab_host_facts(Settings(home=lx.home), host)
    conn = open_conn(f"qemu+unix:///system?socket={f.libvirt_ro_socket}", readonly=True)
    try:
        return {d.name(): bool(d.isActive()) for d in conn.listAllDomains(0)}
    finally:
        conn.close()


SYSTEM_DATAPATH = ("      datapath_type: netdev       # lab", "      datapath_type: system       # lab")


def kvm_datapath(old: str, new: str) -> Callable[[Path], None]:
    """kvm-uat-01's OVS datapath (the first host of hosts.yaml) from ``old`` to ``new``."""

    def edit(repo: Path) -> None:
        p = repo / "hosts" / "hosts.yaml"
        text = p.read_text()
        assert old in text
        p.write_text(text.replace(old, new, 1))

    return edit


def test_an_ovs_setting_the_host_cannot_apply_fails_at_the_twin_and_production_is_untouched(
    lx: Env, sw: Switches
) -> None:
    before, marks = running(sw), sw.checkpoints()
    datapaths, doms = host_datapaths(lx, "kvm-uat-01"), host_domains(lx, "kvm-uat-01")
    assert set(datapaths.values()) == {"netdev"} and "br-phy" in datapaths and any(doms.values())
    deployed = {n: d["deployed_commit"] for n, d in drift(lx).items()}
    run = lx.push_and_drive("kvm-uat-01 on the system datapath", kvm_datapath(*SYSTEM_DATAPATH))
    assert run["state"] == "failed", run["error"]
    assert run["error"].startswith("stage twin failed: twin:") and "kvm-uat-01" in run["error"], run["error"]
    twin = twin_of(lx, run)
    t = twin["summary"]
    assert twin["state"] == "failed" and not t["proven"] and not t["passed"]
    # the host was built in the twin with its leaf and the leaf's peers; its checks are what failed
    assert t["hosts"] == ["kvm-uat-01"] and t["slice"]["kvm-uat-01"] == ["changed"]
    assert {"leaf-01", "spine-01", "spine-02"} <= set(t["switches"]) and "uplink leaf of host kvm-uat-01" in t["slice"][
        "leaf-01"
    ]
    assert t["checks"] and {c["device"] for c in t["checks"]} == {"kvm-uat-01"}, t["checks"]
    assert any("br-phy" in f"{c['subject']} {c['observed']}" for c in t["checks"]), t["checks"]
    dep = stage(run, "deploy")
    assert dep["state"] == "skipped" and dep["started_at"] is None and dep["attempts"] == 0  # never started
    assert stage(run, "rollback")["state"] == "skipped"
    # production proven untouched: the host's datapath and domains, the switches, drift, leases
    assert host_datapaths(lx, "kvm-uat-01") == datapaths and host_domains(lx, "kvm-uat-01") == doms
    assert running(sw) == before and sw.checkpoints() == marks and sw.pending() == []
    now = drift(lx)
    for n, d in now.items():
        assert d["differences"] == [] and not d["pending_commit"] and d["deployed_commit"] == deployed[n], d
    assert now["kvm-uat-01"]["state"] == "behind"  # the branch head (the broken commit) was never applied
    assert asyncio.run(_run_leases(lx)) == []
    no_twin_left(lx)

    # the repo put back: nothing to deploy, nothing to prove; every target in sync
    back = lx.push_and_drive("kvm-uat-01 back on netdev", kvm_datapath(*reversed(SYSTEM_DATAPATH)))
    assert back["state"] == "succeeded", back["error"]
    assert twin_of(lx, back)["summary"]["skipped"] == NOTHING_TO_PROVE
    assert {d["state"] for d in drift(lx).values()} == {"in_sync"}
    assert host_datapaths(lx, "kvm-uat-01") == datapaths
    no_twin_left(lx)


def shut_host_port(leaf: str, port: str) -> Callable[[Path], None]:
    """A repo-local override of the built-in FRR template: ``leaf`` shuts its host-facing ``port``."""
    return lambda repo: write_shut_port(repo, leaf, port)


def test_a_leaf_change_that_cuts_its_hosts_uplink_fails_at_the_twin_with_the_host_built(lx: Env, sw: Switches) -> None:
    """kvm-uat-01 does not change, but its leaf's change reaches it (its port): the twin builds it
    with leaf-01, and its uplink probe to the tunnel network's gateway is what fails."""
    before, marks = running(sw), sw.checkpoints()
    deployed = {n: d["deployed_commit"] for n, d in drift(lx).items()}
    run = lx.push_and_drive("leaf-01 shuts swp1 (template override)", shut_host_port("leaf-01", "swp1"))
    assert run["state"] == "failed", run["error"]
    assert run["error"].startswith("stage twin failed: twin:"), run["error"]
    t = twin_of(lx, run)["summary"]
    assert t["hosts"] == ["kvm-uat-01"], t["slice"]
    assert t["slice"]["kvm-uat-01"] == ["its leaf leaf-01's change reaches it: frr.conf: interface swp1"]
    uplink = [c for c in t["checks"] if c["device"] == "kvm-uat-01" and c["check"] == "uplink"]
    assert uplink and "gateway of infra-tunnel on leaf-01" in uplink[0]["subject"], t["checks"]
    assert uplink[0]["observed"] == "no answer (not even a small ping): the path is cut"
    dep = stage(run, "deploy")
    assert dep["state"] == "skipped" and dep["started_at"] is None  # never started
    assert running(sw) == before and sw.checkpoints() == marks and sw.pending() == []
    now = drift(lx)
    for n, d in now.items():
        assert d["differences"] == [] and d["deployed_commit"] == deployed[n], d
    assert asyncio.run(_run_leases(lx)) == []
    no_twin_left(lx)

    def drop_override(repo: Path) -> None:
        lx.git("rm", "-q", "-r", "templates/frr")

    back = lx.push_and_drive("drop the swp1 override", drop_override)
    assert back["state"] == "succeeded", back["error"]
    assert twin_of(lx, back)["summary"]["skipped"] == NOTHING_TO_PROVE
    assert running(sw) == before
    no_twin_left(lx)


def test_lintas_up_killed_mid_twin_leaves_nothing_the_next_twin_cannot_clean(lx: Env, sw: Switches) -> None:
    sha = lx.push("VNI 10040 on leaf-03, lintas up dies in its twin", add_network("uat-kill", 40, 10040, ["leaf-03"]))
    run_id = lx.new_run(sha)
    deadline = time.monotonic() + 120
    ours: list[dict[str, Any]] = []
    while not ours:  # the twin stage running and its twin being built
        assert time.monotonic() < deadline, lx.stuck(run_id, 120)
        if stage(lx.show(run_id), "twin")["state"] == "running":
            ours = [t for t in json.loads(lx.cli("twin", "list", "--json").stdout) if t["home"] == str(lx.home)]
        time.sleep(0.1)
    lx.kill()  # SIGKILL: no teardown runs
    dead = json.loads(lx.cli("twin", "list", "--json").stdout)
    assert [(t["prefix"], t["alive"]) for t in dead] == [(ours[0]["prefix"], False)]  # left behind, known dead
    lx.start()
    run = lx.drive(run_id)
    # the job is redelivered to the restarted stack's worker: its twin sweeps the dead one first
    assert run["state"] == "succeeded", run["error"]
    t = stage(run, "twin")
    assert t["state"] == "succeeded" and t["deliveries"] >= 2 and t["summary"]["proven"]
    assert sw.remote_vteps("leaf-03", 10040) == []  # on production (no other leaf carries it)
    assert sw.pending() == []
    no_twin_left(lx)
