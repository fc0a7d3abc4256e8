"""Masking (engine/redact.py): credentials in URLs, and a whole model masked."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from lintas.engine.redact import Redactor


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "unable to access 'https://oauth2:glpat-abc123@gitlab.example/x.git/'",
            "unable to access 'https://oauth2:****@gitlab.example/x.git/'",
        ),
        ("nats://lintas:s3cret-pw@127.0.0.1:4222", "nats://lintas:****@127.0.0.1:4222"),
        ("git clone https://ghp_a1b2c3d4@github.com/o/r.git", "git clone https://****@github.com/o/r.git"),
        ("postgres://app:pw@db/x?y=1", "postgres://app:****@db/x?y=1"),
        # an SSH user name is not a secret: libvirt URIs and scp-like remotes are kept as they are
        ("qemu+ssh://lintas@10.255.0.101/system", "qemu+ssh://lintas@10.255.0.101/system"),
        ("ssh://git@host/x and git@github.com:org/repo", "ssh://git@host/x and git@github.com:org/repo"),
        (
            "see http://example.invalid/a@b, mail ops@example.invalid",
            "see http://example.invalid/a@b, mail ops@example.invalid",
        ),
    ],
)
def test_credentials_in_urls_are_masked_and_nothing_else(text: str, masked: str) -> None:
    assert Redactor()(text) == masked


class _Inner(BaseModel):
    said: list[str]


class _Outer(BaseModel):
    error: str | None
    inner: _Inner
    count: int


def test_a_model_is_masked_whole_and_keeps_its_type() -> None:
    m = _Outer(error="password=hunter2", inner=_Inner(said=["token: abc", "plain"]), count=3)
    got = Redactor(["plain"]).model(m)
    assert isinstance(got, _Outer)
    assert got == _Outer(error="password=****", inner=_Inner(said=["token: ****", "****"]), count=3)
