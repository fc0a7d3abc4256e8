"""The dashboard in headless Chromium (Debian's, driven by Playwright; no browser download)
against a live `lintas up` child process with its own LINTAS_HOME and free ports:

open the dashboard, enter a token, see a pushed run appear live (no reload), open it,
see the stage graph and a per-device plan diff, approve a run waiting at an
`approval: required` stage, and save screenshots as test artifacts.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect, sync_playwright

from lintas.engine import subjects as S
from lintas.engine.app import nats_session
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.natsd import free_port
from lintas.engine.settings import Settings
from tests.api.live import TOKENS, Live, lintas, lintas_env
from tests.api.test_twin_report import report as twin_report
from tests.api.test_twin_report import store_twin_run
from tests.conftest import ROOT
from tests.integration.helpers import run_id_of

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 60_000  # generous: these are waits for real work, not timing assertions
# The test owns its pipelines: the template's own .lintas/pipeline.yaml is not read
# (LINTAS_PIPELINE_FILE points elsewhere) and the default pipeline is this one.
PIPELINE_FILE = ".lintas/dashboard-e2e.yaml"
PLAIN_PIPELINE = """version: 1
name: plain
stages:
  validate: {timeout: 5m}
  render: {needs: [validate]}
  policy: {needs: [render]}
  secscan: {needs: [validate]}
"""
GATED_PIPELINE = """version: 1
name: gated
stages:
  validate: {timeout: 5m}
  render: {needs: [validate]}
  policy: {needs: [render]}
  secscan: {needs: [validate]}
  change-window:
    uses: t-noop
    needs: [render, policy, secscan]
    approval: required
  announce:
    uses: t-sleep
    needs: [change-window]
    with: {seconds: 0.2}
"""


def artifacts_dir() -> Path:
    d = Path(os.environ.get("LINTAS_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


def git(cwd: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Live, str, dict[str, str]]]:
    home = tmp_path / "home"
    base = f"127.0.0.1:{free_port()}"
    default = tmp_path / "plain.yaml"
    default.write_text(PLAIN_PIPELINE)
    env = lintas_env(
        home,
        base,
        LINTAS_NATS_PORT=str(free_port()),
        LINTAS_PIPELINE_FILE=PIPELINE_FILE,
        LINTAS_DEFAULT_PIPELINE=str(default),
    )
    proc = Live(env, "up", "--concurrency", "2", log=tmp_path / "up.log")
    try:
        proc.wait_ready(f"http://{base}/readyz")
        yield proc, f"http://{base}", env
    finally:
        rc = proc.stop()
        out = proc.output()
        assert rc == 0, out[-3000:]
        assert all(t not in out for t in TOKENS.values())  # tokens are never logged


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def watch(page: Page, base: str) -> tuple[list[str], list[str]]:
    """(requests to anything but the dashboard's own origin, console errors and page errors)."""
    foreign: list[str] = []
    errors: list[str] = []

    def on_request(req: Request) -> None:
        if not req.url.startswith(base + "/") and not req.url.startswith("data:"):
            foreign.append(req.url)

    def on_console(msg: ConsoleMessage) -> None:
        # a 401 before the token is entered is expected; anything else (CSP, JS errors) is not
        if msg.type == "error" and "status of 401" not in msg.text:
            errors.append(msg.text)

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return foreign, errors


def test_dashboard_live_run_graph_plan_and_approval(
    tmp_path: Path, up: tuple[Live, str, dict[str, str]], browser: Browser
) -> None:
    _proc, base, env = up
    out_dir = artifacts_dir()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    foreign, errors = watch(page, base)

    # 1. the dashboard asks for a token (reads need one here), and lists runs once it has it
    page.goto(f"{base}/")
    assert page.url == f"{base}/ui/"
    expect(page.locator("#token-panel")).to_be_visible(timeout=WAIT_MS)
    page.fill("#token-input", TOKENS["operator"])
    page.click("#token-form button[type=submit]")
    expect(page.locator("#token-panel")).to_be_hidden()
    expect(page.locator("#runs-table")).to_be_visible()
    expect(page.locator(".empty")).to_contain_text("No runs yet", timeout=WAIT_MS)
    expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    page.evaluate("window.__sameDocument = true")  # survives only if the page never reloads

    # 2. `lintas init` pushes the demo repo's first commit: the run appears live
    demo = tmp_path / "demo-infra"
    init = lintas(env, "init", str(demo))
    assert init.returncode == 0, init.stdout + init.stderr
    first = run_id_of(demo, git(demo, env, "rev-parse", "HEAD"))
    row = page.locator(f'tr.run-row[data-run="{first}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    assert page.evaluate("window.__sameDocument") is True
    expect(row.locator(".badge")).to_have_text("succeeded", timeout=WAIT_MS)

    # 3. open it: the stage graph (DAG by `needs`) and the per-device plan diff
    row.click()
    page.wait_for_url(f"**/ui/#/runs/{first}")
    graph = page.locator("svg#stage-graph")
    expect(graph).to_be_visible(timeout=WAIT_MS)
    for stage in ("validate", "render", "policy", "secscan"):
        expect(graph.locator(f'g.node[data-stage="{stage}"]')).to_have_attribute(
            "data-state", "succeeded", timeout=WAIT_MS
        )
    assert graph.locator('path.edge[data-from="validate"][data-to="render"]').count() == 1
    assert graph.locator('path.edge[data-from="render"][data-to="policy"]').count() == 1
    expect(page.locator("#stages-table")).to_contain_text("render")
    plan = page.locator("#plan")
    expect(plan).to_be_visible(timeout=WAIT_MS)
    expect(plan.locator('[data-count="new"]')).to_have_text(re.compile(r"^\d+ new$"))  # nothing deployed yet
    device = plan.locator('details.target[data-kind="device"]').first  # devices first, opened
    expect(device.locator("pre.diff span.add").first).to_be_visible()
    expect(device.locator("pre.diff span.add", has_text="router bgp").first).to_be_visible()
    expect(page.locator("#logs")).to_contain_text("run created", timeout=WAIT_MS)
    expect(page.locator("#log-state")).to_have_text("complete", timeout=WAIT_MS)
    page.screenshot(path=str(out_dir / "dashboard-run-plan.png"), full_page=True)

    # 4. a push whose pipeline gates a stage on approval: it appears live and waits
    page.click("a.back")
    expect(page.locator(f'tr.run-row[data-run="{first}"]')).to_be_visible()
    (demo / PIPELINE_FILE).write_text(GATED_PIPELINE)
    git(demo, env, "add", PIPELINE_FILE)
    git(demo, env, "commit", "-qm", "Gate changes on an approval")
    git(demo, env, "push", "-q", "origin", "HEAD:main")
    gated = run_id_of(demo, git(demo, env, "rev-parse", "HEAD"))
    row = page.locator(f'tr.run-row[data-run="{gated}"]')
    expect(row).to_be_visible(timeout=WAIT_MS)
    expect(row.locator(".badge")).to_have_text("waiting approval", timeout=WAIT_MS)
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(out_dir / "dashboard-runs.png"), full_page=True)

    # 5. open it and approve as an operator
    row.click()
    page.wait_for_url(f"**/ui/#/runs/{gated}")
    graph = page.locator("svg#stage-graph")
    gate = graph.locator('g.node[data-stage="change-window"]')
    expect(gate).to_have_class("node st-waiting", timeout=WAIT_MS)
    assert graph.locator('path.edge[data-to="change-window"]').count() == 3
    approval = page.locator("#approval")
    expect(approval).to_contain_text("Waiting for approval")
    expect(approval).to_contain_text("Gate: change-window")
    expect(approval).not_to_contain_text("null")
    page.screenshot(path=str(out_dir / "dashboard-approval.png"), full_page=True)
    page.fill("#approval-comment", "change window open")
    page.click("#approve-button")
    expect(page.locator(".toast")).to_contain_text("approve requested by olga", timeout=WAIT_MS)
    expect(page.locator("#run-head .title .badge")).to_have_text("succeeded", timeout=WAIT_MS)
    expect(approval).to_be_hidden()
    expect(graph.locator('g.node[data-stage="announce"]')).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#run-head")).to_contain_text("approved by olga")
    shot = out_dir / "dashboard-approved.png"
    page.screenshot(path=str(shot), full_page=True)

    # the approval really went through the API, with the operator's name and comment
    detail = httpx.get(f"{base}/api/v1/runs/{gated}", headers={"Authorization": f"Bearer {TOKENS['viewer']}"}).json()
    assert detail["state"] == "succeeded" and detail["approved_by"] == "olga"
    assert [(a["actor"], a["comment"], a["stages"]) for a in detail["approvals"]] == [
        ("olga", "change window open", ["change-window"])
    ]

    # 6. the targets page renders (nothing is deployed by these pipelines: drift is unknown)
    page.click('a[data-nav="targets"]')
    expect(page.locator("#targets-table")).to_be_visible()
    expect(page.locator(".empty")).to_contain_text("No target has been deployed yet", timeout=WAIT_MS)

    assert not foreign, f"the dashboard reached beyond its own origin: {foreign}"
    assert not errors, errors
    for name in ("dashboard-run-plan.png", "dashboard-runs.png", "dashboard-approval.png", "dashboard-approved.png"):
        assert (out_dir / name).stat().st_size > 10_000
    print(f"dashboard screenshots: {out_dir}/dashboard-*.png (final: {shot})")


XSS = '<img src=x onerror="window.__pwned=1">'


async def _store_twin_run(nats_url: str, home: Path) -> str:
    """A failed run whose twin stage stored its report (tests/api/test_twin_report.py's), with markup in it."""
    run_id = ""
    async with nats_session(Settings(home=home, nats_url=nats_url), name="test") as (_nc, topo):
        run_id = await store_twin_run(topo, with_report=True)
        rep = twin_report(run_id)
        rep.slice["leaf-02"] = ["changed", XSS]
        rep.out_of_scope.append(f"{XSS} not in the slice")
        await NatsArtifactStore(topo.artifacts).put_doc(S.twin_report_doc(run_id), rep.model_dump_json().encode())
    return run_id


def test_dashboard_shows_the_twin_report(up: tuple[Live, str, dict[str, str]], browser: Browser) -> None:
    """A run with a stored twin report: its page shows not proven and why, the slice (switch -> why),
    each phase's time, the failing checks with expected vs observed, the out-of-scope list; the
    report's text is shown as text (markup in it is not run) and redacted."""
    _proc, base, env = up
    store = _store_twin_run(f"nats://127.0.0.1:{env['LINTAS_NATS_PORT']}", Path(env["LINTAS_HOME"]))
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs an event loop in this thread
        run_id = pool.submit(asyncio.run, store).result(60)
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    foreign, errors = watch(page, base)
    page.goto(f"{base}/")
    expect(page.locator("#token-panel")).to_be_visible(timeout=WAIT_MS)
    page.fill("#token-input", TOKENS["viewer"])
    page.click("#token-form button[type=submit]")
    page.goto(f"{base}/ui/#/runs/{run_id}")
    twin = page.locator("#twin")
    expect(twin).to_be_visible(timeout=WAIT_MS)
    expect(twin).to_have_attribute("data-proven", "no")
    verdict = page.locator("#twin-verdict")
    expect(verdict).to_contain_text("NOT proven")
    expect(verdict).to_contain_text("twin run-0123456789ab (lt1d64), 3 switch(es)")
    why = page.locator("#twin-why")
    expect(why).to_contain_text("verify: password=****")  # the report's error, redacted by the API
    expect(why).not_to_contain_text("hunter2")
    # the slice: switch -> why
    assert page.locator("#twin-slice tbody tr").count() == 3
    expect(page.locator('#twin-slice tr[data-switch="leaf-01"]')).to_contain_text("carries VNI 10010 unchanged")
    expect(page.locator('#twin-slice tr[data-switch="spine-01"]')).to_contain_text("peers with leaf-02")
    expect(page.locator('#twin-slice tr[data-switch="leaf-02"]')).to_contain_text(f"changed, {XSS}")
    expect(page.locator("#twin-start")).to_contain_text("started from last_deployed · committed: leaf-02")
    # each phase's time, and the total
    phases = page.locator("#twin-phases tbody tr")
    assert phases.count() == 6
    expect(page.locator('#twin-phases tr[data-phase="start"]')).to_contain_text("13.8 s")
    expect(page.locator('#twin-phases tr[data-phase="verify"] .badge')).to_have_text("fail")
    expect(page.locator('#twin-phases tr[data-phase="total"]')).to_contain_text("22.5 s")
    # the failing check with expected vs observed; the passing one is not listed
    failing = page.locator("#twin-failing tbody tr")
    assert failing.count() == 1
    cells = failing.first.locator("td")
    expect(cells.nth(0)).to_have_text("leaf-01")
    expect(cells.nth(1)).to_have_text("vni")
    expect(cells.nth(2)).to_have_text("10010")
    expect(cells.nth(3)).to_have_text("remote_vteps=10.250.1.12, 10.250.1.13")
    expect(cells.nth(4)).to_have_text("remote_vteps=10.250.1.13")
    expect(page.locator("#twin")).not_to_contain_text("10.250.16.48")
    scope = page.locator("#twin-out-of-scope li")
    assert scope.count() == 3
    expect(scope.nth(1)).to_have_text("spine-02 not in the slice: session leaf-02 ↔ spine-02 not checked")
    expect(scope.nth(2)).to_have_text(f"{XSS} not in the slice")
    # markup in the report is text: no element made from it, nothing run
    assert page.locator("#twin img").count() == 0
    assert page.evaluate("window.__pwned === undefined") is True
    page.screenshot(path=str(artifacts_dir() / "dashboard-twin.png"), full_page=True)
    assert not foreign, f"the dashboard reached beyond its own origin: {foreign}"
    assert not errors, errors
