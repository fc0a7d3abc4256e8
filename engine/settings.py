"""One typed settings tree, ``LINTAS_*`` environment variables over defaults.

Nothing else in Lintas reads the environment: components receive a ``Settings``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lintas.engine.api.settings import TokenEntry, WebhookRepo


class StreamLimits(BaseModel):
    """JetStream sizing, explicit so `lintas up` is reproducible."""

    replicas: int = 1
    events_max_age_s: float = 7 * 24 * 3600
    events_duplicate_window_s: float = 2 * 3600
    logs_max_age_s: float = 7 * 24 * 3600
    logs_max_bytes: int = 1024**3
    dlq_max_age_s: float = 30 * 24 * 3600
    jobs_max_bytes: int = 256 * 1024**2


class CredentialGroup(BaseModel):
    """How to log in to one group of targets (an entry of ``LINTAS_DEPLOY__CREDENTIALS``, a JSON list).

    A target belongs to the first group whose every given selector matches it (no selector: every
    target): ``targets`` are name patterns (``leaf-*``), ``groups`` inventory groups, ``networks``
    subnets holding its management address. Fields left unset fall back to ``deploy.username`` /
    ``key_file`` / ``known_hosts`` and then to the inventory. ``password`` is a secret reference
    (``env:NAME`` / ``file:/path``), never the secret itself.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # a pasted secret is never echoed

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    targets: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    username: str | None = None
    key_file: Path | None = None
    known_hosts: Path | None = None
    password: str | None = Field(None, pattern=r"^(env|file):\S+$")


class DeploySettings(BaseModel):
    """How deploy, verify and rollback reach and change targets (``LINTAS_DEPLOY__*``).

    Connection credentials are server-side: the repo's inventory may only name secrets
    (``env:NAME`` with an allowed prefix, ``file:/path`` under an allowed directory), and
    deploys connect only to management addresses inside ``allowed_networks``.
    """

    # device-side commit-confirm timer, counted from the end of the rollout: a device committed
    # in an early wave gets this plus the health budget of every later wave
    revert_in_s: int = Field(180, ge=10)
    parallelism: int = Field(16, ge=1)  # devices changed at once within a wave
    canary: int = Field(1, ge=0)  # leaves in the first wave (0: no canary wave)
    batch_size: int = Field(0, ge=0)  # leaves per later wave (0: all the rest in one wave, `parallelism` at a time)
    health_timeout_s: float = 60.0  # a wave's devices must be healthy within this
    verify_timeout_s: float = 90.0  # verify: sessions Established / VNIs learnt within this
    # verify's stability rule (workers/deploy/settle.py): every check passes and nothing changed for
    # quiet_s -> stable; checks fail, every session is up and nothing changed for settle_s -> settled
    verify_quiet_s: float = Field(1.0, gt=0)
    verify_settle_s: float = Field(3.0, gt=0)
    verify_poll_s: float = Field(0.3, gt=0)  # pause between two reads of the whole fabric
    lease_ttl_s: float = 300.0  # per-device lease, renewed while a device is worked on
    connect_timeout_s: int = 15
    username: str | None = None  # overrides the inventory's username
    key_file: Path | None = None  # SSH private key of every target no credential source serves
    known_hosts: Path | None = None  # known_hosts of every target no credential source serves
    # the lab's own credential source (registered by `lintas lab up` under LINTAS_HOME): used only for
    # a target the lab built, matched by name and management address; false: never consulted
    use_lab: bool = True
    credentials: list[CredentialGroup] = Field(default_factory=list)  # configured sources, tried in order
    allowed_networks: list[str] = Field(default_factory=lambda: ["10.255.0.0/24"])
    secret_env_prefixes: list[str] = Field(default_factory=lambda: ["FABRIC_", "LINTAS_SECRET_", "LINTAS_SSH_"])
    secret_dirs: list[Path] = Field(default_factory=lambda: [Path("/etc/lintas")])
    allow_deletions: bool = False  # hosts: undefine domains removed from the repo (or `with: allow_deletions`)
    domain_parallelism: int = Field(4, ge=1)  # libvirt domains changed at once on one host
    domain_shutdown_timeout_s: float = Field(60.0, ge=0)  # ACPI shutdown, then destroy

    @model_validator(mode="after")
    def _windows_in_order(self) -> DeploySettings:
        if not self.verify_quiet_s <= self.verify_settle_s <= self.verify_timeout_s:
            raise ValueError(
                "the verify windows must be in order: verify_quiet_s <= verify_settle_s <= verify_timeout_s "
                f"(got {self.verify_quiet_s:g} <= {self.verify_settle_s:g} <= {self.verify_timeout_s:g})"
            )
        if self.verify_poll_s > self.verify_quiet_s:
            raise ValueError(
                f"verify_poll_s ({self.verify_poll_s:g}) must not exceed verify_quiet_s ({self.verify_quiet_s:g}): "
                "the quiet window needs at least two reads"
            )
        return self


class RenderSettings(BaseModel):
    """Limits of the template sandbox (``LINTAS_RENDER__*``): one child process per render job."""

    memory_mb: int = Field(256, ge=64)  # address space of the sandbox process
    cpu_s: int = Field(4, ge=1)  # CPU time of one job's templates (1,000 leaves: 0.44 s); a runaway loop ends here
    max_output_chars: int = Field(4 * 1024 * 1024, ge=1024)  # one artifact


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINTAS_", env_nested_delimiter="__", extra="ignore")

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
    deploy: DeploySettings = DeploySettings()
    render: RenderSettings = RenderSettings()

    # Jobs: delivery contract for every stage consumer.
    job_ack_wait_s: float = 30.0
    job_max_deliver: int = 5
    job_nak_delay_s: float = 1.0
    job_heartbeat_s: float | None = None  # default: ack_wait / 3
    # Stage results: larger than this, the full result goes to the object store and the inline one
    # names it (summary.result_ref); larger than result_max_bytes, the attempt fails with the reason
    result_inline_max_bytes: int = Field(256 * 1024, ge=16 * 1024, le=768 * 1024)
    result_max_bytes: int = Field(16 * 1024**2, ge=64 * 1024)
    evaluation_memory_mb: int = Field(1024, ge=256)  # address space of the child that validates a repo's YAML
    keep_work_trees: bool = False  # debugging only: keep stage work trees (0700) instead of removing them

    # Orchestrator
    tick_s: float = 1.0
    stage_grace_s: float = 30.0  # slack on top of a stage's timeout before it is failed
    pipeline_file: str = ".lintas/pipeline.yaml"
    max_stage_timeout_s: float = Field(3600.0, gt=0)  # a repo's pipeline may not ask for longer stage timeouts
    default_pipeline: Path | None = None  # default: pipelines/default.yaml shipped with Lintas

    # Status API and dashboard (`lintas up`, `lintas api`). Secrets are never held in clear:
    # tokens are SHA-256 hashes (engine/api/settings.py), webhook secrets are env:/file: references.
    api_addr: str = "127.0.0.1:8700"
    api_tokens: list[TokenEntry] = Field(default_factory=list)  # JSON list of {name, role, sha256}
    api_tokens_file: Path | None = None  # more tokens: a JSON file of the same shape
    api_anonymous_read: bool = False  # read endpoints without a token (writes always need one)
    webhooks: dict[str, WebhookRepo] = Field(default_factory=dict)  # registered repo name -> matching + secret
    webhooks_file: Path | None = None  # default: LINTAS_HOME/webhooks.json when it exists
    webhook_dedup_ttl_s: float = 7 * 24 * 3600
    webhook_max_body_bytes: int = 5 * 1024 * 1024

    # Drift: `lintas up` scans every deployed target this often (0: never); remediation (a
    # normal run for the branch head, every gate applies) only when asked for
    drift_interval_s: float = 300.0
    drift_remediate: bool = False

    # Cluster (issue 17): how clients ride out a node loss, and how servers Lintas starts sync
    nats_retry_s: float = 30.0  # a write (publish with Nats-Msg-Id, KV compare-and-set) is retried this long
    nats_sync_interval: str | None = None  # JetStream fsync for servers Lintas starts: "always", or e.g. "2m"
    engine_rescan_s: float = 5.0  # engines adopt runs they do not hold (another engine died) this often; 0: never
    engine_ack_wait_s: float = 30.0  # an input a dead engine took goes to another engine after this
    emit_timeout_s: float = 3.0  # the git hook's budget: what is not acknowledged by then is spooled

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
    def secrets_dir(self) -> Path:
        """Where ``file:`` secret references may point, besides ``deploy.secret_dirs``."""
        return self.home / "secrets"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def heartbeat_s(self) -> float:
        return self.job_heartbeat_s or max(self.job_ack_wait_s / 3, 0.2)
