"""validate -> render on real pushes: artifacts by content hash, plans, incremental renders."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lintas.engine import subjects as S
from lintas.engine.app import stack
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.settings import Settings
from lintas.engine.state import RunState
from lintas.engine.targets import TargetState, TargetStore
from lintas.workers.render.plan import Plan, RenderIndex
from lintas.workers.render.stage import RenderStage
from tests.integration.helpers import commit, git, make_repo, pipeline, push, run_id_of, wait_run

PIPE = pipeline("  validate: {}\n  render:\n    needs: [validate]\n")
ALL = {"spine-01", "spine-02", "leaf-01", "leaf-02", "leaf-03", "leaf-04", "kvm-uat-01", "osc-01"}
NEW_NET = """
  - name: uat-db
    vrf: UAT
    vlan: 30
    vni: 10030
    gateway: 10.30.30.1/24
    mtu: 9000
    leaves: [leaf-01, leaf-02]
"""


async def test_render_plan_and_incremental_rerender(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    initial = git(repo, "rev-parse", "HEAD", settings=settings).stdout.strip()
    first = commit(repo, settings, PIPE, "render pipeline")
    async with stack(settings) as st:
        # the `lintas init` commit (spooled, flushed now) renders everything: nothing to reuse
        run0 = await wait_run(st.topo, run_id_of(repo, initial), timeout=60)
        assert run0.stages["render"].summary["rendered"] == len(ALL)
        push(repo, settings)
        run1 = await wait_run(st.topo, run_id_of(repo, first), timeout=60)
        assert run1.state is RunState.succeeded, (run1.error, run1.stages)
        r1 = run1.stages["render"].summary
        # only the pipeline file changed: every target is reused from the previous commit,
        # and the plan shows all of them as new because nothing is deployed yet
        assert r1["rendered"] == 0 and r1["reused"] == len(ALL)
        assert set(r1["new"]) == ALL and r1["against"].startswith("nothing")
        store = NatsArtifactStore(st.topo.artifacts)
        index1 = RenderIndex.model_validate_json(await store.get_doc(r1["index"]) or b"")
        frr = (await store.get_blob(index1.targets["leaf-01"]["frr.conf"]) or b"").decode()
        assert "router bgp 65111" in frr

        # Pretend the first render was deployed everywhere: the plan's baseline.
        targets = TargetStore(st.topo.targets)
        for t, arts in index1.targets.items():
            await targets.put(
                TargetState(
                    target=t,
                    kind=index1.kinds[t],
                    repo="infra",
                    commit=first,
                    run_id=run1.run_id,
                    artifacts=arts,
                    deployed_at=run1.created_at,
                )
            )

        tenants = (repo / "fabric" / "tenants.yaml").read_text() + NEW_NET
        second = commit(repo, settings, {"fabric/tenants.yaml": tenants}, "add VNI 10030")
        push(repo, settings)
        run2 = await wait_run(st.topo, run_id_of(repo, second), timeout=60)
        assert run2.state is RunState.succeeded, (run2.error, run2.stages)
        r2 = run2.stages["render"].summary
        assert r2["changed"] == ["leaf-01", "leaf-02"], r2
        assert r2["rendered"] < len(ALL) and r2["reused"] >= 4, r2  # incremental: unaffected targets reused
        assert r2["unchanged"] == len(ALL) - 2
        plan = Plan.model_validate_json(await store.get_doc(S.plan_doc(run2.run_id)) or b"")
        leaf1 = plan.targets["leaf-01"]
        assert leaf1.status == "changed"
        text = "".join(d.diff for d in leaf1.diffs)
        assert "+" in text and "10030" in text
        assert plan.targets["leaf-03"].status == "unchanged"

        # The same commit rendered again changes nothing and stores nothing new.
        git(repo, "commit", "--allow-empty", "-qm", "no-op", settings=settings)
        third = git(repo, "rev-parse", "HEAD", settings=settings).stdout.strip()
        push(repo, settings)
        run3 = await wait_run(st.topo, run_id_of(repo, third), timeout=60)
        assert run3.stages["render"].summary["rendered"] == 0


async def test_template_error_names_template_line_and_device(tmp_path: Path, settings: Settings) -> None:
    repo = make_repo(tmp_path, settings)
    bad = "hostname {{ hostname }}\n!\n{{ no_such_variable }}\n"
    sha = commit(repo, settings, {**PIPE, "templates/frr/frr.conf.j2": bad}, "broken template override")
    async with stack(settings) as st:
        push(repo, settings)
        run = await wait_run(st.topo, run_id_of(repo, sha), timeout=60)
        assert run.state is RunState.failed
        diags = run.stages["render"].diagnostics
        assert diags, run.stages["render"].error
        assert all(d.file == "templates/frr/frr.conf.j2" and d.line == 3 for d in diags), diags
        assert {d.path for d in diags} >= {"leaf-01", "spine-01"}
        assert "no_such_variable" in diags[0].message
        assert json.dumps([d.model_dump() for d in diags])  # serialisable for the API


async def test_run_plan_equals_lintas_plan_for_an_explicit_vtep(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: one change set everywhere. leaf-04 gets an explicit VTEP outside the pool:
    the run's render re-renders and plans all six switches (every prefix-list gains the /32),
    the policy stage sees those six and asks approval for the spines, and `lintas plan` of the
    same commit against the same deployed state shows the identical plan."""
    repo = make_repo(tmp_path, settings)
    pipe = pipeline("  validate: {}\n  render:\n    needs: [validate]\n  policy:\n    needs: [render]\n")
    first = commit(repo, settings, pipe, "render + policy pipeline")
    async with stack(settings) as st:
        push(repo, settings)
        run1 = await wait_run(st.topo, run_id_of(repo, first), timeout=90)
        store = NatsArtifactStore(st.topo.artifacts)
        index1 = RenderIndex.model_validate_json(await store.get_doc(run1.stages["render"].summary["index"]) or b"")
        targets = TargetStore(st.topo.targets)
        for t, arts in index1.targets.items():
            await targets.put(
                TargetState(
                    target=t,
                    kind=index1.kinds[t],
                    repo="infra",
                    commit=first,
                    run_id=run1.run_id,
                    artifacts=arts,
                    deployed_at=run1.created_at,
                )
            )

        devices = (repo / "fabric" / "devices.yaml").read_text()
        moved = re.sub(r"(  - name: leaf-04\n(?:    .*\n)*?    id: \d+\n)", r"\g<1>    vtep_ip: 10.99.1.14\n", devices)
        assert moved != devices
        second = commit(repo, settings, {"fabric/devices.yaml": moved}, "leaf-04: move VTEP")
        push(repo, settings)
        run2 = await wait_run(st.topo, run_id_of(repo, second), timeout=90)
        r2 = run2.stages["render"].summary
        switches = sorted(t for t in ALL if not t.startswith(("kvm", "osc")))
        assert sorted(r2["changed"]) == switches and r2["new"] == [] and r2["unchanged"] == 2, r2
        assert any("spine-01, spine-02" in r for r in run2.approval_reasons), run2.approval_reasons
        run_plan = Plan.model_validate_json(await store.get_doc(S.plan_doc(run2.run_id)) or b"")
        for name in switches:
            text = "".join(d.diff for d in run_plan.targets[name].diffs)
            assert "+ip prefix-list PL-LOOPBACKS-EVPN-OVERLAY seq 30 permit 10.99.1.14/32" in text, (name, text)

        # `lintas plan` on a clone at the same commit, against the same deployed state
        clone = tmp_path / "clone"
        git(tmp_path, "clone", "-q", str(repo), str(clone), settings=settings)
        monkeypatch.setenv("LINTAS_NATS_URL", settings.nats_url or "")
        monkeypatch.setenv("LINTAS_HOME", str(settings.home))
        local = await asyncio.to_thread(RenderStage(settings).run_local, clone)
        assert local.outcome == "succeeded", local.failure
        local_plan = Plan.model_validate(local.summary["plan"])
        assert local_plan.against == run_plan.against == "deployed"
        assert local_plan.targets == run_plan.targets


async def test_lintas_plan_compares_against_its_own_repos_deployed_targets(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the run's plan does: the baseline is what *this* repo deployed, never another repo's
    targets. The working copy is found in the registry by its remote; a copy that is not, with
    targets deployed from several repos, is refused rather than planned against a guess."""
    from lintas.engine.app import nats_session

    repo = make_repo(tmp_path, settings)
    monkeypatch.setenv("LINTAS_NATS_URL", settings.nats_url or "")
    monkeypatch.setenv("LINTAS_HOME", str(settings.home))
    async with nats_session(settings, name="test") as (_nc, topo):
        await TargetStore(topo.targets).put(
            TargetState(
                target="leaf-01",
                kind="device",
                repo="other",
                commit="b" * 40,
                run_id="r-other",
                artifacts={"frr.conf": "sha256:" + "0" * 64},
                deployed_at=datetime.now(UTC),
            )
        )

    plan = await asyncio.to_thread(RenderStage(settings).run_local, repo)
    assert plan.outcome == "succeeded", plan.failure
    local = Plan.model_validate(plan.summary["plan"])
    assert local.against.startswith("HEAD ") and "no deployed state known" in local.against  # nothing of infra's
    assert {t.status for t in local.targets.values()} == {"unchanged"}

    async with nats_session(settings, name="test") as (_nc, topo):
        await TargetStore(topo.targets).put(
            TargetState(
                target="leaf-02",
                kind="device",
                repo="infra",
                commit="c" * 40,
                run_id="r-infra",
                artifacts={"frr.conf": "sha256:" + "1" * 64},
                deployed_at=datetime.now(UTC),
            )
        )
    clone = tmp_path / "unregistered"
    git(tmp_path, "clone", "-q", str(repo), str(clone), settings=settings)  # its remote is the work tree
    refused = await asyncio.to_thread(RenderStage(settings).run_local, clone)
    assert refused.outcome == "failed" and refused.failure is not None
    assert "deployed from several repos (infra, other)" in str(refused.failure.diagnostics[0]), refused.failure
    named = await asyncio.to_thread(RenderStage(settings).run_local, clone, repo="infra")
    assert named.outcome == "succeeded", named.failure
    by_name = Plan.model_validate(named.summary["plan"])
    assert by_name.against == "deployed"
    assert by_name.targets["leaf-02"].status == "changed" and by_name.targets["leaf-01"].status == "new"
    mine = Plan.model_validate((await asyncio.to_thread(RenderStage(settings).run_local, repo)).summary["plan"])
    assert mine.targets == by_name.targets  # the registered copy finds "infra" by itself
