"""The dashboard's shipped files: served from the package with a strict CSP, nothing
fetched from another host, every file covered by the package data; plus the stage
graph endpoint the run page draws."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from lintas.engine.api.graph import graph_of
from lintas.engine.api.ui import STATIC, load_assets
from lintas.engine.pipeline import PipelineSpec
from lintas.engine.state import Run, RunState, StageRecord, StageStatus
from tests.api.conftest import Api, auth, store_runs
from tests.conftest import ROOT

SVG_NS = "http://www.w3.org/2000/svg"  # an XML namespace name: an identifier, never fetched
URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.\-]+(?::\d+)?[^\s"'`<>)]*""")


def shipped() -> list[Path]:
    return sorted(p for p in STATIC.rglob("*") if p.is_file())


def test_no_asset_refers_to_another_host() -> None:
    files = shipped()
    assert {p.relative_to(STATIC).as_posix() for p in files} >= {
        "index.html",
        "assets/app.js",
        "assets/app.css",
        "assets/favicon.svg",
    }
    for path in files:
        text = path.read_text()
        for m in URL.finditer(text):
            url = m.group(0)
            if url.startswith("//") and not re.match(r"//[A-Za-z]", url):
                continue  # a JS comment or regex, not a protocol-relative URL
            assert url == SVG_NS, f"{path.name}: external URL {url!r}"
        assert "@import" not in text and "cdn" not in text.lower(), path.name
        for ref in re.findall(r"""(?:src|href)=["']([^"']+)""", text) + re.findall(r"url\(([^)]*)\)", text):
            ref = ref.strip("'\" ")
            assert ref.startswith(("/", "#", "data:")) and not ref.startswith("//"), f"{path.name}: {ref!r}"


def test_every_shipped_file_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["lintas"]
    for path in shipped():
        rel = path.relative_to(ROOT).as_posix()
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), f"{rel} is not package data"
    assert set(load_assets()) == {p.relative_to(STATIC).as_posix() for p in shipped()}


async def test_dashboard_is_served_with_csp_and_never_leaks_the_filesystem(api: Api) -> None:
    root = await api.http.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/ui/"
    page = await api.http.get("/ui/")  # no token needed: the page holds no data
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    refs = re.findall(r"""(?:src|href)="(/ui/assets/[^"]+)""", page.text)
    assert {"/ui/assets/app.js", "/ui/assets/app.css", "/ui/assets/favicon.svg"} <= set(refs)
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for ref in refs:
        res = await api.http.get(ref)
        assert res.status_code == 200 and res.content == (STATIC / ref.removeprefix("/ui/")).read_bytes()
        assert res.headers["content-type"].startswith(types[Path(ref).suffix])
        again = await api.http.get(ref, headers={"If-None-Match": res.headers["etag"]})
        assert again.status_code == 304 and not again.content
    for bad in ("/ui/assets/nope.js", "/ui/assets/..%2F..%2Fapp.py", "/ui/assets/%2e%2e%2fui.py", "/ui/../app.py"):
        res = await api.http.get(bad)
        assert res.status_code == 404, bad
        assert "import" not in res.text
    paths = (await api.http.get("/openapi.json")).json()["paths"]
    assert not any(p == "/" or p.startswith("/ui") for p in paths)


SPEC = PipelineSpec.model_validate(
    {
        "version": 1,
        "name": "p",
        "stages": {
            "validate": {},
            "render": {"needs": ["validate"]},
            "secscan": {"needs": ["validate"]},
            "deploy": {"needs": ["render", "secscan"], "approval": "required"},
            "verify": {"needs": ["deploy"]},
            "rollback": {"on_failure": ["deploy", "verify"]},
        },
    }
)


def gated_run() -> Run:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    stages = {n: StageRecord(name=n, kind=s.kind, on_failure=bool(s.on_failure)) for n, s in SPEC.stages.items()}
    for n in ("validate", "render", "secscan"):
        stages[n].status = StageStatus.succeeded
    stages["deploy"].awaiting_approval = True
    return Run(
        run_id="r-graph000000001",
        event_id="e",
        repo="infra",
        url="/x",
        ref="refs/heads/main",
        sha="a" * 40,
        state=RunState.waiting_approval,
        created_at=now,
        updated_at=now,
        pipeline=SPEC,
        stages=stages,
    )


def test_graph_layers_stages_by_dependency_depth() -> None:
    g = graph_of(gated_run())
    by = {n.name: n for n in g.stages}
    assert [n.name for n in g.stages] == ["validate", "render", "secscan", "deploy", "verify", "rollback"]
    assert {n: by[n].depth for n in by} == {
        "validate": 0,
        "render": 1,
        "secscan": 1,
        "deploy": 2,
        "verify": 3,
        "rollback": 4,
    }
    assert by["deploy"].needs == ["render", "secscan"] and by["deploy"].approval == "required"
    assert by["deploy"].awaiting_approval and not by["verify"].awaiting_approval
    assert by["rollback"].on_failure == ["deploy", "verify"] and by["rollback"].needs == []
    assert (by["validate"].state, by["verify"].state) == ("succeeded", "pending")
    # a run whose pipeline is not resolved yet has an empty graph
    bare = gated_run().model_copy(update={"pipeline": None, "stages": {}})
    assert graph_of(bare).stages == [] and graph_of(bare).pipeline is None


async def test_graph_endpoint(api: Api) -> None:
    run = gated_run()
    await store_runs(api.topo, [run])
    assert (await api.http.get(f"/api/v1/runs/{run.run_id}/graph")).status_code == 401
    res = await api.http.get(f"/api/v1/runs/{run.run_id}/graph", headers=auth("viewer"))
    assert res.status_code == 200
    body = res.json()
    assert body["pipeline"] == "p" and [n["depth"] for n in body["stages"]] == [0, 1, 1, 2, 3, 4]
    assert (await api.http.get("/api/v1/runs/r-nope/graph", headers=auth("viewer"))).status_code == 404
