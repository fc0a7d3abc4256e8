"""Policy test fixtures: the template's model and input, and OPA servers.

The OPA backend is tested against every OPA we can run here:

- ``standin``: tests/policy/opa_standin.py, a STAND-IN that answers OPA's REST API with
  regorus (there is no ``opa`` binary in any registry this machine reaches);
- ``opa``: a real ``opa run --server``, *only when an ``opa`` binary is on PATH*. When there is
  none, this parameter is not generated at all, rather than generated and skipped: a skip
  would look like coverage we do not have. Put ``opa`` on PATH and the same tests run
  against it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from lintas.engine.natsd import free_port
from lintas.workers.model import InfraModel, load_model
from lintas.workers.policy.input import build_input, repo_templates
from lintas.workers.policy.library import builtin_data, builtin_modules, data_document
from tests.policy.opa_standin import opa_standin

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"
OPA_BINARY = shutil.which("opa")
OPA_KINDS = ["standin", *(["opa"] if OPA_BINARY else [])]
FIXED_META = {
    "repo": "infra",
    "ref": "refs/heads/main",
    "branch": "main",
    "sha": "a" * 40,
    "before": "b" * 40,
    "author": "Dev One",
    "author_email": "dev@example.invalid",
    "committer": "Dev One",
    "message": "Add uat-db\n\nLintas-Labels: change-1234\n",
    "subject": "Add uat-db",
    "commit_time": "2026-03-02T10:00:00Z",
    "evaluated_at": "2026-03-02T10:00:05Z",
    "labels": ["change-1234"],
    "changed_paths": ["fabric/tenants.yaml"],
}


def nothing_changed(model: InfraModel) -> dict[str, Any]:
    return {"against": "deployed", "new": [], "changed": [], "removed": [], "unchanged": len(model.targets)}


@pytest.fixture(scope="session")
def template_model() -> InfraModel:
    return load_model(TEMPLATE)


@pytest.fixture(scope="session")
def template_input(template_model: InfraModel) -> dict[str, Any]:
    return build_input(
        template_model,
        plan_summary=nothing_changed(template_model),
        meta=FIXED_META,
        templates=repo_templates(TEMPLATE),
    )


@pytest.fixture(scope="session")
def library() -> dict[str, str]:
    return builtin_modules(tests=False)


@pytest.fixture(scope="session")
def default_data() -> dict[str, Any]:
    return data_document(builtin_data())


def _real_opa() -> Iterator[str]:
    assert OPA_BINARY is not None
    port = free_port()
    proc = subprocess.Popen(
        [OPA_BINARY, "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if requests.get(f"{url}/health", timeout=0.5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("opa did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(params=OPA_KINDS)
def opa_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Base URL of an OPA server: the stand-in, and a real ``opa`` when one is on PATH."""
    if request.param == "opa":
        yield from _real_opa()
    else:
        with opa_standin() as (url, _state):
            yield url
