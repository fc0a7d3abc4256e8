"""``lintas twin up <repo> --ref REF`` (issue 18), for real: the ref rendered locally, its change's
slice built against what production has deployed (a real nats-server's targets store holding the
template's artifacts), started from them, the ref deployed and verified, the result printed, and
the twin LEFT UP until ``lintas twin down``; production untouched.

The real CLI in a subprocess. Runs against the production lab (one per module): under
``flock /tmp/lintas-lab.lock``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.breakage import write_evpn_filter
from bench.twin_capacity import record_deployed
from bench.twin_stage import NEW_VNI
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.settings import Settings
from lintas.workers.lab import LabState
from lintas.workers.lab.twin_life import twin_statuses
from tests.policy.stagekit import TEMPLATE, git_repo

from .conftest import ROOT, ip_json, needs_lab, run
from .test_twin_stage import assert_no_twin_left, production_configs

pytestmark = needs_lab

PASSWORD_ENV = "FABRIC_BGP_PASSWORD"
SWITCHES = ["leaf-01", "leaf-02", "leaf-03", "leaf-04", "spine-01", "spine-02"]
LINTAS = str(ROOT / ".venv" / "bin" / "lintas")


@pytest.fixture(scope="module")
def prod(lab: tuple[Settings, LabState], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The lab, a NATS whose targets store says the template is deployed (its artifacts stored), and
    the fabric's secret in the environment."""
    settings, _ = lab
    old = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = "Lx-" + secrets.token_hex(8)
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), free_port())
    run(server.start())
    try:
        yield Settings(home=settings.home, nats_url=server.url)
    finally:
        run(server.stop())
        if old is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = old


def lintas(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LINTAS_NATS_URL"} | {"LINTAS_HOME": str(settings.home)}
    if settings.nats_url:
        env["LINTAS_NATS_URL"] = settings.nats_url
    env["COLUMNS"] = "200"
    return subprocess.run([LINTAS, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def twin_of(name: str) -> Any:
    mine = [st for st in twin_statuses() if st.record is not None and st.record.name == name]
    assert len(mine) == 1, twin_statuses()
    return mine[0]


def vnis(namespace: str) -> set[int]:
    links = ip_json("-d", "-n", namespace, "link", "show", "type", "vxlan")
    assert isinstance(links, list)
    return {int(x["linkinfo"]["info_data"]["id"]) for x in links}


def test_twin_up_ref_builds_the_one_vni_slice_leaves_it_up_and_down_removes_it(prod: Settings, tmp_path: Path) -> None:
    assert_no_twin_left()
    tenants = (TEMPLATE / "fabric" / "tenants.yaml").read_text()
    repo, shas = git_repo(tmp_path / "repo", {"fabric/tenants.yaml": tenants + NEW_VNI}, message="VNI 10060")
    run(record_deployed(prod, repo, shas[0]))
    same = lintas(prod, "twin", "up", str(repo), "--ref", shas[0])  # what production runs: nothing to try
    assert same.returncode == 2 and "nothing to try" in same.stderr, same.stdout + same.stderr
    assert_no_twin_left()
    before = production_configs(prod, SWITCHES)
    t0 = time.monotonic()
    out = lintas(prod, "twin", "up", str(repo), "--ref", shas[-1][:10], "--name", "try-vni")
    took = time.monotonic() - t0
    print(f"twin up --ref: {took:.1f} s, load {os.getloadavg()}\n{out.stdout}")
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "started from production's last deployed artifacts" in text
    assert "passed" in text and "failed" not in text
    assert "leaf-01: changed" in text and "carries VNI" in text  # the slice, switch -> why
    assert "is left up" in text and "lintas twin down try-vni" in text
    phases = {ln.split()[0] for ln in out.stdout.splitlines() if ln.split()}
    assert {"build", "start", "deploy", "verify", "total"} <= phases  # each phase's time
    st = twin_of("try-vni")
    assert st.alive and st.record.phase == "up" and st.record.holder is None  # left up, nobody holds it
    assert st.record.switches == ["leaf-01", "leaf-02", "spine-01", "spine-02"]
    assert f"{st.prefix}-leaf-01" in text  # how to reach each switch
    assert 10060 in vnis(f"{st.prefix}-leaf-01")  # the change is on the twin's leaf
    assert 10060 not in vnis("lx-leaf-01")
    assert production_configs(prod, SWITCHES) == before  # production byte-identical
    down = lintas(prod, "twin", "down", "try-vni")
    assert down.returncode == 0, down.stdout + down.stderr
    assert_no_twin_left()


def test_twin_up_ref_of_a_breaking_change_reports_its_checks_exits_1_and_stays_up(
    prod: Settings, tmp_path: Path
) -> None:
    assert_no_twin_left()
    override = tmp_path / "override"
    write_evpn_filter(override, "leaf-02")
    files = {"templates/frr/frr.conf.j2": (override / "templates" / "frr" / "frr.conf.j2").read_text()}
    repo, shas = git_repo(tmp_path / "repo", files, message="EVPN filter on leaf-02")
    run(record_deployed(prod, repo, shas[0]))
    before = production_configs(prod, SWITCHES)
    out = lintas(prod, "twin", "up", str(repo), "--ref", "HEAD", "--name", "try-filter")
    print(out.stdout)
    try:
        assert out.returncode == 1, out.stdout + out.stderr
        text = " ".join(out.stdout.split())
        assert "failed" in text and "failing checks:" in text
        assert "vni" in text and "check(s) failed" in text
        st = twin_of("try-filter")
        assert st.alive and st.record.phase == "up"  # left up to explore
        assert st.record.switches == ["leaf-01", "leaf-02", "spine-01", "spine-02"]
        assert production_configs(prod, SWITCHES) == before
    finally:
        down = lintas(prod, "twin", "down", "try-filter")
    assert down.returncode == 0, down.stdout + down.stderr
    assert_no_twin_left()


def test_twin_up_ref_without_lintas_starts_at_day0_and_says_so(prod: Settings, tmp_path: Path) -> None:
    """No Lintas answers (no LINTAS_NATS_URL, no `lintas up` in this home): a private nats-server for
    the command, nothing deployed, so every switch is new and the twin is the whole topology."""
    assert_no_twin_left()
    tenants = (TEMPLATE / "fabric" / "tenants.yaml").read_text()
    repo, _ = git_repo(tmp_path / "repo", {"fabric/tenants.yaml": tenants + NEW_VNI}, message="VNI 10060")
    alone = Settings(home=tmp_path / "home")
    out = lintas(alone, "twin", "up", str(repo), "--ref", "HEAD", "--name", "try-day0")
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        text = " ".join(out.stdout.split())
        assert "started from day 0 (no Lintas: LINTAS_NATS_URL unset, no `lintas up`)" in text
        assert "the whole topology" in text and "passed" in text
        assert twin_of("try-day0").record.switches == SWITCHES
    finally:
        down = lintas(alone, "twin", "down", "try-day0")
    assert down.returncode == 0, down.stdout + down.stderr
    assert_no_twin_left()


def test_twin_up_without_ref_still_builds_day0_switches_and_refuses_mixed_options(
    prod: Settings, tmp_path: Path
) -> None:
    """The first form is unchanged: the switches at day 0, nothing deployed, left up until down."""
    assert_no_twin_left()
    out = lintas(prod, "twin", "up", str(TEMPLATE), "--switch", "spine-01", "--name", "plain")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "twin plain up" in out.stdout and "spine-01" in out.stdout
    st = twin_of("plain")
    assert st.alive and st.record.switches == ["spine-01"] and st.record.holder is None
    assert lintas(prod, "twin", "down", "plain").returncode == 0
    assert_no_twin_left()
    out = lintas(prod, "twin", "up", str(tmp_path), "--ref", "HEAD", "--switch", "leaf-01")
    assert out.returncode == 2 and "--switch does not go with --ref" in out.stderr
    out = lintas(prod, "twin", "up", str(tmp_path), "--whole")
    assert out.returncode == 2 and "--whole and --repo go with --ref" in out.stderr
