"""NATS connection and the JetStream topology, created or updated idempotently."""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from engine import subjects as S
from engine.errors import BusError, ConfigError
from engine.settings import Settings


async def connect(settings: Settings, url: str, *, name: str, reconnect: bool = True) -> Client:
    """Connect with the auth / TLS options from settings. Never logs credentials."""
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
    if not reconnect:
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


async def _ensure_stream(js: JetStreamContext, cfg: api.StreamConfig) -> None:
    try:
        await js.add_stream(cfg)
    except BadRequestError:
        await js.update_stream(cfg)  # exists with other settings: bring it to ours


async def _ensure_kv(js: JetStreamContext, cfg: api.KeyValueConfig) -> KeyValue:
    try:
        return await js.create_key_value(cfg)
    except BadRequestError:
        kv = await js.key_value(cfg.bucket)
        return kv


async def ensure_topology(js: JetStreamContext, settings: Settings) -> Topology:
    lim = settings.streams
    def stream(name: str, subject: str, **limits: object) -> api.StreamConfig:
        return api.StreamConfig(name=name, subjects=[subject], storage=api.StorageType.FILE,
                                num_replicas=lim.replicas, **limits)  # type: ignore[arg-type]

    history = {"retention": api.RetentionPolicy.LIMITS, "discard": api.DiscardPolicy.OLD}
    streams = [
        stream(S.EVENTS_STREAM, S.EVENTS_ALL, **history, max_age=lim.events_max_age_s,
               duplicate_window=lim.events_duplicate_window_s),
        stream(S.RESULTS_STREAM, S.RESULTS_ALL, **history, max_age=lim.events_max_age_s,
               duplicate_window=lim.events_duplicate_window_s),
        # never drop queued work silently: a full work queue refuses new jobs instead
        stream(S.JOBS_STREAM, S.JOBS_ALL, retention=api.RetentionPolicy.WORK_QUEUE, discard=api.DiscardPolicy.NEW,
               duplicate_window=lim.events_duplicate_window_s, max_bytes=lim.jobs_max_bytes),
        stream(S.LOGS_STREAM, S.LOGS_ALL, **history, max_age=lim.logs_max_age_s, max_bytes=lim.logs_max_bytes),
        stream(S.DLQ_STREAM, S.DLQ_ALL, retention=api.RetentionPolicy.LIMITS, max_age=lim.dlq_max_age_s),
        stream(S.NOTIFY_STREAM, S.NOTIFY_ALL, **history, max_age=lim.logs_max_age_s, max_bytes=lim.logs_max_bytes),
    ]
    try:
        for cfg in streams:
            await _ensure_stream(js, cfg)
        kv = {
            name: await _ensure_kv(js, api.KeyValueConfig(bucket=name, history=hist, replicas=lim.replicas))
            for name, hist in (
                (S.RUNS_BUCKET, 1),
                (S.BRANCHES_BUCKET, 1),
                (S.JOURNAL_BUCKET, 1),
                (S.LOCKS_BUCKET, 1),
                (S.TARGETS_BUCKET, 5),
            )
        }
        try:
            artifacts = await js.object_store(S.ARTIFACTS_STORE)
        except NotFoundError:
            artifacts = await js.create_object_store(
                S.ARTIFACTS_STORE, config=api.ObjectStoreConfig(replicas=lim.replicas)
            )
    except BusError:
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


def engine_consumer_config(durable: str, subject: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=durable,
        filter_subject=subject,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_wait=30,
        max_deliver=-1,  # the engine's own inputs must never be dropped
        max_ack_pending=10_000,
    )
