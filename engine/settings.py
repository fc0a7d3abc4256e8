"""One typed settings tree, ``LINTAS_*`` environment variables over defaults.

Nothing else in Lintas reads the environment: components receive a ``Settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class StreamLimits(BaseModel):
    """JetStream sizing, explicit so `lintas up` is reproducible."""

    replicas: int = 1
    events_max_age_s: float = 7 * 24 * 3600
    events_duplicate_window_s: float = 2 * 3600
    logs_max_age_s: float = 7 * 24 * 3600
    logs_max_bytes: int = 1024**3
    dlq_max_age_s: float = 30 * 24 * 3600
    jobs_max_bytes: int = 256 * 1024**2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LINTAS_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".lintas")

    # NATS: when url is unset, `lintas up` runs an embedded nats-server.
    nats_url: str | None = None
    nats_port: int = 4222
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    nats_nkey_seed: SecretStr | None = None
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    nats_connect_timeout_s: float = 2.0

    streams: StreamLimits = StreamLimits()

    # Jobs: delivery contract for every stage consumer.
    job_ack_wait_s: float = 30.0
    job_max_deliver: int = 5
    job_nak_delay_s: float = 1.0
    job_heartbeat_s: float | None = None  # default: ack_wait / 3

    # Orchestrator
    tick_s: float = 1.0
    stage_grace_s: float = 30.0  # slack on top of a stage's timeout before it is failed
    pipeline_file: str = ".lintas/pipeline.yaml"
    default_pipeline: Path | None = None  # default: pipelines/default.yaml shipped with Lintas

    api_addr: str = "127.0.0.1:8700"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    # Helpers for derived locations under LINTAS_HOME -----------------------
    @property
    def nats_dir(self) -> Path:
        return self.home / "nats"

    @property
    def spool_dir(self) -> Path:
        return self.home / "spool"

    @property
    def work_dir(self) -> Path:
        return self.home / "work"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def heartbeat_s(self) -> float:
        return self.job_heartbeat_s or max(self.job_ack_wait_s / 3, 0.2)
