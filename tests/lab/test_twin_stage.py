"""The ``twin`` stage (issue 18), for real: a run's rendered artifacts deployed to a throwaway twin of
the template's switches (beside the production lab, same management addresses) through the deploy
code (FRR driver, waves, commit-confirm, health gate) and verified by verify's checks and stability
rule; production untouched (configs byte-identical, no lease, no deployment record); the twin gone
after each run.

The stage is driven directly (a real nats-server, a real git repo, the render stage before it), not
through `lintas up`. Runs against the production lab (one per module): under ``flock /tmp/lintas-lab.lock``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import NoKeysError

from bench.breakage import BUILTIN_FRR, write_evpn_filter
from bench.twin_stage import NEW_VNI
from lintas.engine import registry
from lintas.engine import subjects as S
from lintas.engine.contracts import RenderSummary, TwinSummary
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.pipeline import load_pipeline
from lintas.engine.settings import Settings
from lintas.engine.stage import StageResult
from lintas.engine.targets import TargetState, TargetStore
from lintas.workers.lab import LabState, lab_device_facts, lab_hosts_facts
from lintas.workers.lab.netns import orphan_mounts
from lintas.workers.lab.paths import TWIN_ROOT
from lintas.workers.lab.twin_life import twin_statuses
from lintas.workers.render.stage import RenderStage
from lintas.workers.twin.stage import TwinStage
from tests.policy.stagekit import TEMPLATE, Harness, git_repo, harness
from tests.render import as_eos, template_texts

from .conftest import ROOT, ip_json, needs_lab, run
from .test_twin import namespaces, strays

pytestmark = needs_lab

PASSWORD_ENV = "FABRIC_BGP_PASSWORD"


@pytest.fixture(scope="module")
def prod(lab: tuple[Settings, LabState]) -> Iterator[Settings]:
    settings, _ = lab
    old = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = "Lx-" + secrets.token_hex(8)
    try:
        yield settings
    finally:
        if old is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = old


def production_configs(settings: Settings, switches: list[str]) -> dict[str, bytes]:
    return {n: (lab_device_facts(settings, n).config_dir / "frr.conf").read_bytes() for n in switches}


def production_hosts(settings: Settings) -> dict[str, tuple[list[str], list[str]]]:
    """Each production host's OVS bridges and libvirt domains (through its own sockets)."""
    import libvirt

    out = {}
    for name, f in lab_hosts_facts(settings).items():
        brs = subprocess.run(
            ["ovs-vsctl", f"--db={f.ovsdb_socket}", "--timeout=10", "list-br"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        conn = libvirt.openReadOnly(f"qemu+unix:///system?socket={f.libvirt_ro_socket}")
        try:
            doms = sorted(d.name() for d in conn.listAllDomains(0))
        finally:
            conn.close()
        out[name] = (brs, doms)
    return out


def assert_no_twin_left() -> None:
    assert twin_statuses() == []
    assert not {n for n in namespaces() if n.startswith("lt")}
    assert not list(TWIN_ROOT.glob("lt*"))
    assert orphan_mounts("lintas-twin/") == {}
    assert strays() == {}


async def _stage(h: Harness, repo: Path, sha: str, stage: str, run_id: str, inputs: dict[str, Any]) -> StageResult:
    ctx = h.context(repo, sha, stage=stage, run_id=run_id, inputs=inputs)
    factory = RenderStage if stage == "render" else TwinStage
    return await factory(h.settings).run(ctx)


async def scenario(
    prod: Settings, tmp: Path, files: dict[str, str] | None, *, deployed_first: bool
) -> tuple[StageResult, dict[str, Any], Harness | None, dict[str, bool]]:
    """Render the repo's last commit and run the twin stage on it; production is compared around it.

    ``deployed_first``: the template's artifacts are recorded as production's last deployed ones
    (the twin starts from them, then takes the change)."""
    server = EmbeddedNats(tmp / "nats", free_port())
    await server.start()
    settings = Settings(home=prod.home, nats_url=server.url)
    repo, shas = git_repo(tmp / "repo", files)
    run_id = "r-" + secrets.token_hex(4)
    facts: dict[str, bool] = {}
    try:
        async with harness(settings, run_id) as h:
            if deployed_first:
                base = await _stage(h, repo, shas[0], "render", run_id + "-base", {})
                assert base.outcome == "succeeded", base.failure
                index = RenderSummary.model_validate(base.summary)
                raw = await h.doc(index.plan or S.plan_doc(run_id + "-base"))
                assert raw is not None
                plan = json.loads(raw)
                store = TargetStore(h.topo.targets)
                for name, tp in plan["targets"].items():  # hosts too: production runs the whole template
                    await store.put(
                        TargetState(
                            target=name,
                            kind=tp.get("kind") or "device",
                            repo="infra",
                            commit=shas[0],
                            run_id=run_id + "-base",
                            artifacts=tp["artifacts"],
                            deployed_at=datetime.now(UTC),
                        )
                    )
            rendered = await _stage(h, repo, shas[-1], "render", run_id, {})
            assert rendered.outcome == "succeeded", rendered.failure
            switches = ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02"]
            before, hosts_before = production_configs(prod, switches), production_hosts(prod)
            t0 = time.monotonic()
            result = await _stage(h, repo, shas[-1], "twin", run_id, {"render": rendered.summary})
            print(f"twin stage: {time.monotonic() - t0:.2f} s, {result.summary.get('timings')}, load {os.getloadavg()}")
            facts["configs_identical"] = production_configs(prod, switches) == before
            facts["hosts_identical"] = production_hosts(prod) == hosts_before
            facts["no_lease"] = await _leases(h) == []
            facts["no_deploy_record"] = await h.doc(S.deploy_record_doc(run_id)) is None
            raw_report = await h.doc(S.twin_report_doc(run_id))
            assert raw_report is not None
            report = json.loads(raw_report)
            return result, report, h, facts
    finally:
        await server.stop()


async def _leases(h: Harness) -> list[str]:
    try:
        return list(await h.topo.locks.keys())
    except NoKeysError:
        return []


def test_a_good_change_passes_in_the_twin_and_production_is_untouched(prod: Settings, tmp_path: Path) -> None:
    assert_no_twin_left()
    result, report, _, facts = run(scenario(prod, tmp_path, None, deployed_first=False))
    assert result.outcome == "succeeded", result.failure
    summary = TwinSummary.model_validate(result.summary)
    assert summary.passed and summary.start == "day0"
    assert summary.whole  # day 0: every switch is new, the twin is the whole topology
    assert summary.switches == ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02"]
    # day 0: every switch (and host, below) takes the run's config
    assert set(summary.committed) == set(summary.switches) | set(summary.hosts)
    assert set(summary.timings) >= {"build_s", "start_s", "deploy_s", "verify_s", "teardown_s", "total_s"}
    assert report["passed"] is True and report["totals"]["failed"] == 0 and report["totals"]["passed"] > 20
    assert {c["check"] for c in report["checks"]} >= {"bgp", "vni", "ping"}
    assert all("expected" in c and "observed" in c for c in report["checks"])
    # the hosts are new too: built in the twin with their leaves, deployed and checked by verify's host checks
    assert summary.hosts == ["kvm-uat-01", "osc-01"] and summary.slice["kvm-uat-01"] == ["changed"]
    host_checks = [c for c in report["checks"] if c["device"] in summary.hosts]
    assert {c["check"] for c in host_checks} >= {"ovs", "address", "domain"}
    assert all(c["passed"] for c in host_checks) and {c["device"] for c in host_checks} == set(summary.hosts)
    assert summary.proven and summary.hosts_unproven == []
    assert not any(s.startswith("host ") for s in report["out_of_scope"])
    assert facts == {"configs_identical": True, "no_lease": True, "no_deploy_record": True, "hosts_identical": True}
    # production stayed at day 0: no BGP anywhere, no VXLAN
    assert "router bgp" not in (lab_device_facts(prod, "leaf-01").config_dir / "frr.conf").read_text()
    assert ip_json("-n", "lx-leaf-01", "link", "show", "type", "vxlan") == []
    assert_no_twin_left()


def test_a_breaking_change_fails_the_twin_naming_the_check_and_production_is_untouched(
    prod: Settings, tmp_path: Path
) -> None:
    """The change filters leaf-02's EVPN routes (a repo-local template); the twin starts from the
    template's artifacts recorded as production's last deployed ones, so it tests the transition."""
    assert_no_twin_left()
    override = tmp_path / "override"
    write_evpn_filter(override, "leaf-02")
    files = {"templates/frr/frr.conf.j2": (override / "templates" / "frr" / "frr.conf.j2").read_text()}
    result, report, _, facts = run(scenario(prod, tmp_path, files, deployed_first=True))
    assert result.outcome == "failed"
    assert result.failure is not None
    message = result.failure.message
    assert message.startswith("twin: ") and " vni " in message and "check(s) failed" in message, message
    summary = TwinSummary.model_validate(result.summary)
    assert not summary.passed and summary.start == "last_deployed"
    assert summary.committed == ["leaf-02"]  # the transition: only the changed leaf took a commit
    # in the change's slice (leaf-02, its spines, leaf-01 carrying its VNIs unchanged), not all 6
    assert summary.switches == ["leaf-01", "leaf-02", "spine-01", "spine-02"] and not summary.whole
    assert summary.slice["leaf-02"] == ["changed"] and "carries VNI 10010 unchanged" in summary.slice["leaf-01"]
    # leaf-01 sees no route of leaf-02's VNIs: the filter's effect, proven from the unchanged leaf
    assert any(c["device"] == "leaf-01" and c["check"] == "vni" for c in summary.checks), summary.checks
    assert summary.checks and all(c["passed"] is False for c in summary.checks)
    assert any(c["check"] == "vni" for c in summary.checks)
    assert report["passed"] is False and report["started_from"]["leaf-02"].startswith("deployed ")
    assert facts == {"configs_identical": True, "no_lease": True, "no_deploy_record": True, "hosts_identical": True}
    assert_no_twin_left()


def test_a_one_vni_change_is_proven_on_its_slice_not_the_whole_fabric(prod: Settings, tmp_path: Path) -> None:
    """A VNI added on leaf-01 (the bench's change), from the template deployed: the twin holds
    leaf-01, both spines and leaf-02 (an unchanged leaf carrying leaf-01's VNIs), starts and deploys
    only those, passes, and says what of verify's checks the slice could not run."""
    assert_no_twin_left()
    tenants = (TEMPLATE / "fabric" / "tenants.yaml").read_text()
    files = {"fabric/tenants.yaml": tenants + NEW_VNI}
    result, report, _, facts = run(scenario(prod, tmp_path, files, deployed_first=True))
    assert result.outcome == "succeeded", result.failure
    summary = TwinSummary.model_validate(result.summary)
    slice_ = ["leaf-01", "leaf-02", "spine-01", "spine-02"]
    assert summary.passed and not summary.whole and summary.switches == slice_
    assert summary.slice["leaf-01"] == ["changed"] and summary.slice["spine-02"] == ["peers with leaf-01"]
    assert "carries VNI 10020 unchanged" in summary.slice["leaf-02"]
    assert summary.start == "last_deployed" and sorted(report["started_from"]) == slice_
    assert summary.committed == ["leaf-01"] and report["deployed"] == slice_
    # every check ran on the slice, about the slice: no session, remote VTEP or ping of leaf-03/04
    assert {c["device"] for c in report["checks"]} == set(slice_)
    assert report["totals"]["failed"] == 0 and report["totals"]["passed"] > 20
    assert not [c for c in report["checks"] if "leaf-03" in str(c) or "leaf-04" in str(c)]
    scope = report["out_of_scope"]
    assert any(s.startswith("leaf-03 not in the slice: sessions spine-01 ↔ leaf-03, spine-02 ↔ leaf-03") for s in scope)
    assert any(s.startswith("leaf-04 not in the slice: ") for s in scope) and summary.out_of_scope == scope
    assert facts == {"configs_identical": True, "no_lease": True, "no_deploy_record": True, "hosts_identical": True}
    assert_no_twin_left()


def spine_only_override(spine: str) -> str:
    """The built-in FRR template with an unused route-map on ``spine`` only: a change of that spine alone."""
    builtin = BUILTIN_FRR.read_text()
    bgp = "router bgp {{ asn }}\n"
    assert builtin.count(bgp) == 1, "the built-in FRR template changed shape"
    extra = f"{{% if hostname == '{spine}' %}}\nroute-map RM-TWIN-UNUSED permit 10\nexit\n!\n{{% endif %}}\n"
    return builtin.replace(bgp, extra + bgp)


def test_a_spine_change_is_proven_without_the_other_spine(prod: Settings, tmp_path: Path) -> None:
    """spine-01 alone changes: the twin holds it and every leaf (its peers), not spine-02. The leaves'
    ports to spine-02 exist (stub veths: their configs name them, the driver needs them), their
    sessions to it are out of the twin's scope, and the twin passes."""
    assert_no_twin_left()
    files = {"templates/frr/frr.conf.j2": spine_only_override("spine-01")}
    result, report, _, facts = run(scenario(prod, tmp_path, files, deployed_first=True))
    assert result.outcome == "succeeded", result.failure
    summary = TwinSummary.model_validate(result.summary)
    assert summary.switches == ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01"] and not summary.whole
    assert summary.slice["spine-01"] == ["changed"] and summary.slice["leaf-03"] == ["peers with spine-01"]
    assert summary.committed == ["spine-01"] and summary.passed
    assert not [c for c in report["checks"] if "spine-02" in str(c)]
    assert {c["check"] for c in report["checks"]} >= {"bgp", "vni", "ping-df"}
    [line] = [s for s in report["out_of_scope"] if "not in the slice" in s and not s.startswith("host ")]
    # the hosts (unchanged) are not built: their checks out of scope
    assert [s for s in report["out_of_scope"] if s.startswith("host ")] == [
        "host kvm-uat-01 not in the slice: its OVS, addresses, uplink and domains not checked",
        "host osc-01 not in the slice: its OVS, addresses, uplink and domains not checked",
    ]
    assert line.startswith("spine-02 not in the slice: sessions leaf-01 ↔ spine-02, leaf-02 ↔ spine-02, ")
    assert facts == {"configs_identical": True, "no_lease": True, "no_deploy_record": True, "hosts_identical": True}
    assert_no_twin_left()


async def cancelled_mid_deploy(prod: Settings, tmp: Path) -> tuple[bool, dict[str, Any], bool]:
    """The twin stage cancelled (as a stage timeout or an engine stop does) once its twin is up and
    its deploy has begun: ``(cancelled, the report, a twin was alive before the cancel)``."""
    server = EmbeddedNats(tmp / "nats", free_port())
    await server.start()
    settings = Settings(home=prod.home, nats_url=server.url)
    repo, shas = git_repo(tmp / "repo")
    run_id = "r-" + secrets.token_hex(4)
    try:
        async with harness(settings, run_id) as h:
            rendered = await _stage(h, repo, shas[-1], "render", run_id, {})
            assert rendered.outcome == "succeeded", rendered.failure
            task = asyncio.create_task(_stage(h, repo, shas[-1], "twin", run_id, {"render": rendered.summary}))
            deadline = time.monotonic() + 30
            while not [st for st in twin_statuses() if st.alive and st.record and st.record.phase == "up"]:
                assert time.monotonic() < deadline and not task.done(), "the twin never came up"
                await asyncio.sleep(0.1)
            await asyncio.sleep(2.0)  # the spine waves are committing
            alive = bool(twin_statuses())
            task.cancel()
            try:
                await task
                cancelled = False
            except asyncio.CancelledError:
                cancelled = True
            raw = await h.doc(S.twin_report_doc(run_id))
            assert raw is not None
            return cancelled, json.loads(raw), alive
    finally:
        await server.stop()


def test_a_cancelled_twin_stage_tears_its_twin_down(prod: Settings, tmp_path: Path) -> None:
    assert_no_twin_left()
    cancelled, report, alive = run(cancelled_mid_deploy(prod, tmp_path))
    assert alive and cancelled
    assert report["passed"] is False and "CancelledError" in (report["error"] or "")
    assert [p["name"] for p in report["phases"]][0] == "build" and report["phases"][-1]["name"] == "teardown"
    assert_no_twin_left()


def test_the_readme_pipeline_with_a_twin_stage_validates() -> None:
    """The README's snippet: twin after render, policy and secscan, before deploy."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("# a pipeline with a twin stage")
    snippet = readme[start : readme.index("```", start)]
    kinds = registry.stage_kinds()
    assert "twin" in kinds
    spec = load_pipeline(snippet, file="pipeline.yaml", known_kinds=kinds, confirmed_by=registry.confirmations(kinds))
    assert spec.stages["twin"].needs == ["render", "policy", "secscan"]
    assert "twin" in spec.stages["deploy"].needs


def test_a_changed_switch_no_twin_can_build_leaves_the_change_unproven(prod: Settings, tmp_path: Path) -> None:
    """spine-02 moved to EOS (which the model and render support, a twin cannot run) and spine-01
    changed: the twin builds spine-01 and the leaves, the leaves' ports to spine-02 are stubs (their
    configs name them), spine-01's change passes, and the stage says NOT proven, naming spine-02
    and its platform (not required here; a required twin fails: tests/twin/test_gate.py)."""
    assert_no_twin_left()
    files = {
        "templates/frr/frr.conf.j2": spine_only_override("spine-01"),
        "fabric/devices.yaml": as_eos(template_texts(), {"spine-02"})["fabric/devices.yaml"],
    }
    result, report, _, facts = run(scenario(prod, tmp_path, files, deployed_first=True))
    assert result.outcome == "succeeded", result.failure
    summary = TwinSummary.model_validate(result.summary)
    assert summary.switches == ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01"] and summary.passed
    assert "spine-01" in summary.committed and "spine-02" not in summary.committed
    assert (summary.proven, summary.switches_proven, summary.switches_unproven) == (False, False, ["spine-02"])
    unproven = ["switch spine-02: platform eos cannot be built in a twin (FRR switches only)"]
    assert summary.unproven == unproven and report["unproven"] == unproven
    assert not [c for c in report["checks"] if "spine-02" in str(c)]
    assert facts == {"configs_identical": True, "no_lease": True, "no_deploy_record": True, "hosts_identical": True}
    assert_no_twin_left()
