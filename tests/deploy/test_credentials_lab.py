"""Production-style credentials against the real lab: the lab's own credential source is disabled, and the
operator's configured source (an SSH key and known_hosts of its own, by management network) is what
deploys. One lab (2 spines + 4 leaves in network namespaces, reached over SSH on the lab's management
network); one commit with a device-side timer, confirmed, through the same Fleet and ops a deploy uses."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lintas.engine.settings import CredentialGroup, DeploySettings, Settings
from lintas.workers.deploy import ops
from lintas.workers.deploy.fleet import Fleet
from lintas.workers.lab import PrerequisiteError, find_tools, lab_down, lab_up
from lintas.workers.lab.paths import LabPaths
from lintas.workers.model import load_model
from lintas.workers.reach.credentials import credential_sources, registration_file
from lintas.workers.render.env import Renderer
from lintas.workers.render.network import render_device

pytestmark = [pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "gitops-repo-template"
LEAF = "leaf-01"
RUN_ID = "r-c0ffee01"


@pytest.fixture(scope="module")
def lab_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    try:
        find_tools()
    except PrerequisiteError as exc:
        pytest.fail(f"lab prerequisites missing (run scripts/setup.sh): {exc}")
    settings = Settings(home=tmp_path_factory.mktemp("cred") / "home")
    try:
        asyncio.run(lab_up(settings, TEMPLATE))
        yield settings.home
    finally:
        asyncio.run(lab_down(settings))


@pytest.fixture
def production(lab_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """What an operator configures for a real fabric: the lab's source off, a key pair and known_hosts
    of its own (here: copies of the lab's, in the operator's directory), by management network."""
    lab = LabPaths(lab_home)
    op = tmp_path / "operator"
    op.mkdir(mode=0o700)
    key, known = op / "fabric_ed25519", op / "fabric_known_hosts"
    shutil.copyfile(lab.key, key)
    key.chmod(0o600)
    shutil.copyfile(lab.known_hosts, known)
    monkeypatch.setenv("FABRIC_BGP_PASSWORD", "Lx-cred-" + secrets.token_hex(6))
    group = CredentialGroup(name="fabric", networks=["10.255.0.0/24"], username="root", key_file=key, known_hosts=known)
    return Settings(
        home=lab_home,
        deploy=DeploySettings(use_lab=False, credentials=[group], revert_in_s=60, allowed_networks=["10.255.0.0/24"]),
    )


def test_deploy_through_configured_credentials_with_the_lab_source_disabled(production: Settings) -> None:
    assert registration_file(production.home, "lab").exists()  # the lab registered itself ...
    assert [s.name for s in credential_sources(production)] == ["credentials:fabric"]  # ... and is not asked
    model = load_model(TEMPLATE)
    bundle = render_device(model, LEAF, Renderer(TEMPLATE))
    bundle["frr.conf"] += "ip prefix-list LINTAS-CRED seq 5 permit 10.99.0.0/24\n"
    fleet = Fleet(model, production, [LEAF])
    try:
        conn = fleet.conns[LEAF]
        assert (conn.source, conn.username, conn.key_file) == (
            "credentials:fabric",
            "root",
            production.deploy.credentials[0].key_file,
        )
        applied = asyncio.run(
            fleet.run(
                [LEAF],
                ops.apply,
                bundles={LEAF: bundle},
                fence=lambda name: None,
                revert_in=60,
                run_id=RUN_ID,
                message=ops.commit_message(RUN_ID, "c0ffee01", "demo", "main"),
            )
        )[LEAF]
        assert applied.ok, applied.error
        assert applied.value is not None and applied.value.changed and "LINTAS-CRED" in applied.value.diff
        pending = asyncio.run(fleet.run([LEAF], ops.pending_commit))[LEAF]
        assert pending.ok and pending.value is not None and pending.value.run_id == RUN_ID
        confirmed = asyncio.run(
            fleet.run([LEAF], ops.confirm, run_id=RUN_ID, checkpoints={LEAF: applied.value.checkpoint})
        )[LEAF]
        assert (confirmed.value, confirmed.error) == ("confirmed", None)
        assert asyncio.run(fleet.run([LEAF], ops.pending))[LEAF].value is False
        running = asyncio.run(fleet.run([LEAF], lambda d, n: d.get_config(retrieve="running")["running"]))[LEAF]
        assert "LINTAS-CRED" in str(running.value)
        password = os.environ["FABRIC_BGP_PASSWORD"]  # resolved at push time, never shown back
        assert password not in applied.value.diff and password not in fleet.mask(str(running.value))
    finally:
        fleet.close()
