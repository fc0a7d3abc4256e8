"""The API's settings are part of the one ``Settings`` tree (``LINTAS_*``): there is a
single BaseSettings in Lintas, and the deploy settings beside them are untouched."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

import lintas.engine.api.settings as api_settings
from lintas.engine.api.settings import Role, TokenEntry, WebhookRepo, all_tokens, all_webhooks
from lintas.engine.settings import DeploySettings, Settings
from tests.conftest import ROOT


def test_there_is_one_basesettings() -> None:
    found = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(b, ast.Name) and b.id == "BaseSettings")
                or (isinstance(b, ast.Attribute) and b.attr == "BaseSettings")
                for b in node.bases
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.name}")
    assert found == ["engine/settings.py:Settings"]
    assert not hasattr(api_settings, "ApiSettings")


def test_api_settings_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    digest = hashlib.sha256(b"op-token").hexdigest()
    monkeypatch.setenv("LINTAS_HOME", str(tmp_path))
    monkeypatch.setenv("LINTAS_API_ADDR", "127.0.0.1:9999")
    monkeypatch.setenv(
        "LINTAS_API_TOKENS", json.dumps([{"name": "olga", "role": "operator", "sha256": digest.upper()}])
    )
    monkeypatch.setenv("LINTAS_API_ANONYMOUS_READ", "true")
    monkeypatch.setenv("LINTAS_WEBHOOKS__INFRA__GITHUB", "acme/infra")
    monkeypatch.setenv("LINTAS_WEBHOOKS__INFRA__SECRET_REF", "env:HOOK_SECRET")
    monkeypatch.setenv("LINTAS_WEBHOOK_MAX_BODY_BYTES", "1024")
    monkeypatch.setenv("LINTAS_DEPLOY__CANARY", "2")
    s = Settings()
    assert s.api_addr == "127.0.0.1:9999" and s.api_anonymous_read is True
    assert s.api_tokens == [TokenEntry(name="olga", role="operator", sha256=digest)]
    assert s.api_tokens[0].level is Role.operator
    assert s.webhooks == {"infra": WebhookRepo(github="acme/infra", secret_ref="env:HOOK_SECRET")}
    assert s.webhook_max_body_bytes == 1024 and s.webhook_dedup_ttl_s == 7 * 24 * 3600
    # the deploy settings and their helpers live on beside the API's
    assert isinstance(s.deploy, DeploySettings) and s.deploy.canary == 2 and s.secrets_dir == tmp_path / "secrets"


def test_defaults_are_closed() -> None:
    s = Settings(home=Path("/nonexistent"))
    assert s.api_tokens == [] and s.api_anonymous_read is False and s.webhooks == {}
    assert all_tokens(s) == [] and all_webhooks(s) == {}


def test_tokens_are_hashes_and_secrets_are_references() -> None:
    with pytest.raises(ValidationError):
        Settings(api_tokens=[{"name": "x", "role": "operator", "sha256": "the-token-in-clear"}])
    with pytest.raises(ValidationError):
        Settings(api_tokens=[{"name": "x", "role": "root", "sha256": "0" * 64}])
    with pytest.raises(ValidationError):
        Settings(webhooks={"infra": {"github": "acme/infra", "secret_ref": "hunter2"}})


def test_token_and_webhook_files_extend_the_settings(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps([{"name": "vera", "role": "viewer", "sha256": "b" * 64}]))
    (tmp_path / "webhooks.json").write_text(
        json.dumps(
            {
                "infra": {"gitlab": "acme/infra", "secret_ref": "file:/etc/lintas/hook"},
                "other": {"gitea": "acme/other", "secret_ref": "env:OTHER"},
            }
        )
    )
    s = Settings(
        home=tmp_path,
        api_tokens_file=tokens,
        api_tokens=[TokenEntry(name="adam", role="admin", sha256="a" * 64)],
        webhooks={"infra": WebhookRepo(github="acme/infra", secret_ref="env:HOOK")},
    )
    assert [(t.name, t.level) for t in all_tokens(s)] == [("adam", Role.admin), ("vera", Role.viewer)]
    hooks = all_webhooks(s)  # LINTAS_HOME/webhooks.json by default; the environment wins per repo
    assert hooks["infra"].github == "acme/infra" and hooks["infra"].gitlab is None
    assert hooks["other"].gitea == "acme/other"
