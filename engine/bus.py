"""NATS connection and the JetStream topology, created or updated idempotently."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.client import KV_STREAM_TEMPLATE
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue
from nats.js.object_store import OBJ_STREAM_TEMPLATE, ObjectStore

from lintas.engine import subjects as S
from lintas.engine.errors import BusError, ConfigError
from lintas.engine.settings import Settings

log = structlog.get_logger("lintas.bus")
T = TypeVar("T")

# What a client sees while a node is lost or a leader is elected: retry these (with the same
# Nats-Msg-Id or compare-and-set revision), never report the write as done until acknowledged.
_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,  # builtin, and asyncio.TimeoutError
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.FlushTimeoutError,
    NoStreamResponseError,
    ServiceUnavailableError,
)
# JetStream API answers that only mean "not now" in a cluster (election, peers not caught up)
# no peers for placement, JS unavailable, not current; and (a cluster, same id published twice at
# once) "duplicate message id is in process": retried, it resolves to a duplicate ack
_TRANSIENT_API_CODES = {10005, 10008, 10074, 10075, 10158}
DEFAULT_RETRY_S = 30.0


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, APIError):
        return exc.code in (500, 503) or exc.err_code in _TRANSIENT_API_CODES
    return False


async def retrying(op: Callable[[], Awaitable[T]], *, deadline_s: float = DEFAULT_RETRY_S, what: str = "") -> T:
    """Run ``op`` until it succeeds, a non-transient error is raised, or ``deadline_s`` passes
    (then the last transient error is raised: the caller must not count the write as done)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    delay = 0.05
    while True:
        try:
            return await op()
        except Exception as exc:
            if not is_transient(exc) or loop.time() + delay >= deadline:
                raise
            log.debug("transient NATS error, retrying", what=what, error=type(exc).__name__)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


async def publish_acked(
    js: JetStreamContext,
    subject: str,
    data: bytes,
    *,
    msg_id: str,
    deadline_s: float = DEFAULT_RETRY_S,
    timeout_s: float = 2.0,
) -> api.PubAck:
    """Publish with ``Nats-Msg-Id`` and wait for the stream's ack, retrying the *same* message
    across node loss and leader elections: the stream's dedup window makes retries safe."""
    return await retrying(
        lambda: js.publish(subject, data, timeout=timeout_s, headers={api.Header.MSG_ID: msg_id}),
        deadline_s=deadline_s,
        what=subject,
    )


async def connect(settings: Settings, url: str, *, name: str, reconnect: bool = True, quiet: bool = False) -> Client:
    """Connect with the auth / TLS options from settings. Never logs credentials.

    ``url`` may list several servers (a cluster), comma-separated: the client fails over
    between them. ``quiet`` silences the client's own error printing (the git hook)."""
    opts: dict[str, object] = {
        "servers": [u.strip() for u in url.split(",")],
        "name": name,
        "connect_timeout": settings.nats_connect_timeout_s,
        "allow_reconnect": reconnect,
        "max_reconnect_attempts": -1 if reconnect else 0,
        "reconnect_time_wait": 0.5,
    }
    if settings.nats_user:
        opts["user"] = settings.nats_user
        if settings.nats_password:
            opts["password"] = settings.nats_password.get_secret_value()
    if settings.nats_token:
        opts["token"] = settings.nats_token.get_secret_value()
    if settings.nats_nkey_seed:
        opts["nkeys_seed_str"] = settings.nats_nkey_seed.get_secret_value()
    if settings.nats_tls_ca or settings.nats_tls_cert:
        ctx = ssl.create_default_context(cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None)
        if settings.nats_tls_cert:
            if not settings.nats_tls_key:
                raise ConfigError("LINTAS_NATS_TLS_CERT is set but LINTAS_NATS_TLS_KEY is not")
            ctx.load_cert_chain(str(settings.nats_tls_cert), str(settings.nats_tls_key))
        opts["tls"] = ctx
    if quiet or not reconnect:
        opts["error_cb"] = _quiet
        opts["disconnected_cb"] = _quiet_none
    nc = Client()
    try:
        await nc.connect(**opts)  # type: ignore[arg-type]
    except Exception as exc:  # nats raises several unrelated types here
        with contextlib.suppress(Exception):
            await nc.close()  # a failed handshake (e.g. bad credentials) leaves the socket open
        raise BusError(f"cannot connect to NATS at {url}: {type(exc).__name__}: {exc}") from exc
    return nc


async def _quiet(_exc: Exception) -> None:
    return None


async def _quiet_none() -> None:
    return None


@dataclass
class Topology:
    """Handles to every bucket Lintas uses, after :func:`ensure_topology`."""

    js: JetStreamContext
    runs: KeyValue
    branches: KeyValue
    journal: KeyValue
    locks: KeyValue
    targets: KeyValue
    artifacts: ObjectStore


_STREAM_EXISTS = 10058  # "stream name already in use with a different configuration"


async def _ensure_stream(js: JetStreamContext, cfg: api.StreamConfig) -> None:
    try:
        await js.add_stream(cfg)
    except BadRequestError as exc:
        if exc.err_code != _STREAM_EXISTS:
            raise
        await js.update_stream(cfg)  # exists with other settings: bring it to ours


async def _ensure_kv(js: JetStreamContext, cfg: api.KeyValueConfig) -> KeyValue:
    try:
        return await js.create_key_value(cfg)
    except BadRequestError as exc:
        if is_transient(exc):
            raise  # e.g. no peers for placement yet: retried by the caller
        kv = await js.key_value(cfg.bucket)
        return kv


def _kv_buckets(settings: Settings) -> list[api.KeyValueConfig]:
    r = settings.streams.replicas
    return [
        *(
            api.KeyValueConfig(bucket=name, history=hist, replicas=r)
            for name, hist in (
                (S.RUNS_BUCKET, 1),
                (S.BRANCHES_BUCKET, 1),
                (S.JOURNAL_BUCKET, 1),
                (S.LOCKS_BUCKET, 1),
                (S.TARGETS_BUCKET, 5),
            )
        ),
        # created here (not lazily by the API) so that it has the cluster's replica count too
        api.KeyValueConfig(bucket=S.WEBHOOK_DELIVERIES_BUCKET, history=1, ttl=settings.webhook_dedup_ttl_s, replicas=r),
    ]


def _streams(settings: Settings) -> list[api.StreamConfig]:
    lim = settings.streams

    def stream(name: str, subject: str, **limits: object) -> api.StreamConfig:
        return api.StreamConfig(
            name=name,
            subjects=[subject],
            storage=api.StorageType.FILE,
            num_replicas=lim.replicas,
            **limits,  # type: ignore[arg-type]
        )

    history = {"retention": api.RetentionPolicy.LIMITS, "discard": api.DiscardPolicy.OLD}
    return [
        stream(
            S.EVENTS_STREAM,
            S.EVENTS_ALL,
            **history,
            max_age=lim.events_max_age_s,
            duplicate_window=lim.events_duplicate_window_s,
        ),
        stream(
            S.RESULTS_STREAM,
            S.RESULTS_ALL,
            **history,
            max_age=lim.events_max_age_s,
            duplicate_window=lim.events_duplicate_window_s,
        ),
        # never drop queued work silently: a full work queue refuses new jobs instead
        stream(
            S.JOBS_STREAM,
            S.JOBS_ALL,
            retention=api.RetentionPolicy.WORK_QUEUE,
            discard=api.DiscardPolicy.NEW,
            duplicate_window=lim.events_duplicate_window_s,
            max_bytes=lim.jobs_max_bytes,
        ),
        stream(S.LOGS_STREAM, S.LOGS_ALL, **history, max_age=lim.logs_max_age_s, max_bytes=lim.logs_max_bytes),
        stream(S.DLQ_STREAM, S.DLQ_ALL, retention=api.RetentionPolicy.LIMITS, max_age=lim.dlq_max_age_s),
        stream(S.NOTIFY_STREAM, S.NOTIFY_ALL, **history, max_age=lim.logs_max_age_s, max_bytes=lim.logs_max_bytes),
    ]


def _all_stream_names(settings: Settings) -> list[str]:
    return [
        *(c.name for c in _streams(settings) if c.name),
        *(KV_STREAM_TEMPLATE.format(bucket=c.bucket) for c in _kv_buckets(settings)),
        OBJ_STREAM_TEMPLATE.format(bucket=S.ARTIFACTS_STORE),
    ]


def _clustered(js: JetStreamContext) -> bool:
    """Whether the connected server is part of a cluster (its INFO names one)."""
    nc: Any = getattr(js, "_nc", None)  # nats-py has no public handle on the server's INFO
    info: dict[str, Any] = getattr(nc, "_server_info", None) or {}
    return bool(info.get("cluster"))


async def _check_replicas(js: JetStreamContext, settings: Settings) -> list[tuple[str, int]]:
    """Refuse a replica count the servers cannot hold, before anything is created or changed.
    Returns the existing streams whose replica count differs (to migrate)."""
    want = settings.streams.replicas
    if want < 1:
        raise ConfigError(f"LINTAS_STREAMS__REPLICAS must be at least 1, not {want}")
    if want > 1 and not _clustered(js):
        raise ConfigError(
            f"LINTAS_STREAMS__REPLICAS={want} needs a NATS cluster, but the server at LINTAS_NATS_URL is "
            "standalone (no cluster block): nothing was created; use replicas 1 or point at a cluster"
        )
    differs: list[tuple[str, int]] = []
    for name in _all_stream_names(settings):
        try:
            info = await retrying(lambda n=name: js.stream_info(n), what=f"stream info {name}")  # type: ignore[misc]
        except NotFoundError:
            continue
        if info.config.num_replicas != want:
            differs.append((name, info.config.num_replicas or 1))
    return differs


async def _migrate_replicas(js: JetStreamContext, name: str, have: int, want: int) -> None:
    """Scale an existing stream (or a KV bucket's / object store's stream) to ``want`` replicas."""
    info = await js.stream_info(name)
    cfg = info.config
    cfg.num_replicas = want
    await js.update_stream(cfg)
    log.warning("stream replicas migrated", stream=name, replicas_from=have, replicas_to=want)


async def ensure_topology(js: JetStreamContext, settings: Settings) -> Topology:
    """Create or update every stream, bucket and the object store, each with
    ``LINTAS_STREAMS__REPLICAS`` replicas. An existing topology with another replica count is
    migrated (JetStream scales streams in place); a count the servers cannot hold is refused
    before anything is touched. Transient cluster errors (an election, peers still catching up)
    are retried for a while."""
    lim = settings.streams
    wait = settings.nats_retry_s
    try:
        differs = await _check_replicas(js, settings)
        try:
            # The first change decides: if the servers cannot place this many replicas, it fails
            # (after the retries) and nothing has been created or changed.
            for name, have in differs:
                await retrying(
                    lambda n=name, h=have: _migrate_replicas(js, n, h, lim.replicas),  # type: ignore[misc]
                    deadline_s=wait,
                    what=f"migrate {name}",
                )
            for cfg in _streams(settings):
                await retrying(
                    lambda c=cfg: _ensure_stream(js, c),  # type: ignore[misc]
                    deadline_s=wait,
                    what=f"stream {cfg.name}",
                )
        except APIError as exc:
            if exc.err_code == 10005:
                raise ConfigError(
                    f"LINTAS_STREAMS__REPLICAS={lim.replicas}: the NATS cluster cannot place that many replicas "
                    f"(fewer JetStream servers up, within {wait:g}s); nothing was "
                    + ("migrated" if differs else "created")
                ) from exc
            raise
        kv: dict[str, KeyValue] = {}
        for kcfg in _kv_buckets(settings):
            kv[kcfg.bucket] = await retrying(
                lambda c=kcfg: _ensure_kv(js, c),  # type: ignore[misc]
                deadline_s=wait,
                what=f"bucket {kcfg.bucket}",
            )

        async def objects() -> ObjectStore:
            try:
                return await js.object_store(S.ARTIFACTS_STORE)
            except NotFoundError:
                return await js.create_object_store(
                    S.ARTIFACTS_STORE, config=api.ObjectStoreConfig(replicas=lim.replicas)
                )

        artifacts = await retrying(objects, deadline_s=wait, what="object store")
    except (BusError, ConfigError):
        raise
    except Exception as exc:
        raise BusError(f"cannot create JetStream topology: {type(exc).__name__}: {exc}") from exc
    return Topology(
        js=js,
        runs=kv[S.RUNS_BUCKET],
        branches=kv[S.BRANCHES_BUCKET],
        journal=kv[S.JOURNAL_BUCKET],
        locks=kv[S.LOCKS_BUCKET],
        targets=kv[S.TARGETS_BUCKET],
        artifacts=artifacts,
    )


def worker_consumer_config(kind: str, settings: Settings) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=S.worker_consumer(kind),
        filter_subject=S.job(kind),
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=settings.job_ack_wait_s,
        max_deliver=settings.job_max_deliver,
        max_ack_pending=1000,
    )


def engine_consumer_config(durable: str, subject: str, ack_wait_s: float = 30.0) -> api.ConsumerConfig:
    """Shared by every engine on the cluster: an input one engine took and did not ack (it
    died) goes to another after ``ack_wait_s``."""
    return api.ConsumerConfig(
        durable_name=durable,
        filter_subject=subject,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=ack_wait_s,
        max_deliver=-1,  # the engine's own inputs must never be dropped
        max_ack_pending=10_000,
    )
