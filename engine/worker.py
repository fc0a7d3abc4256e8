"""Worker runtime: pulls jobs for the stages it serves, runs them, reports results.

Delivery contract (at-least-once, idempotent):
- the journal in KV records each execution; a job already ``done`` is not run again,
  its recorded result is re-published instead;
- the message is acked only after the result is durably in the RESULTS stream;
- long jobs send ``in_progress`` heartbeats so JetStream does not redeliver them;
- retryable errors are nak'ed with delay; at ``max_deliver`` the job is dead-lettered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout

from lintas.engine import subjects as S
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.bus import Topology, publish_acked, worker_consumer_config
from lintas.engine.diagnostics import Diagnostic
from lintas.engine.disposition import classify
from lintas.engine.errors import InputError
from lintas.engine.events import Job, JobFinished, JobStarted, StageFailure
from lintas.engine.gitrepo import MirrorCache
from lintas.engine.journal import Journal, JournalEntry
from lintas.engine.lifecycle import Service
from lintas.engine.redact import Redactor
from lintas.engine.results import failed_copy, inline_part, serialised
from lintas.engine.runlog import RunLogger
from lintas.engine.settings import Settings
from lintas.engine.stage import Stage, StageContext, StageResult

log = structlog.get_logger("lintas.worker")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Worker(Service):
    """``async with Worker(nc, topo, settings, stages) as w: await w.wait()``"""

    def __init__(
        self,
        nc: Client,
        topology: Topology,
        settings: Settings,
        stages: Sequence[Stage],
        *,
        concurrency: int = 4,
        worker_id: str | None = None,
        redactor: Redactor | None = None,
        start_report_delay_s: float = 0.05,
    ) -> None:
        self._nc = nc
        self._topo = topology
        self._settings = settings
        self._stages = {s.kind: s for s in stages}
        self._sem = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self.worker_id = worker_id or default_worker_id()
        self._journal = Journal(topology.journal)
        self._mirror = MirrorCache(settings.cache_dir / f"worker-{os.getpid()}")
        self._redact = redactor or Redactor()
        self.start_report_delay_s = start_report_delay_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._started = False

    @property
    def kinds(self) -> list[str]:
        return list(self._stages)

    async def start(self) -> None:
        js = self._topo.js
        for kind in self._stages:
            cfg = worker_consumer_config(kind, self._settings)
            await js.add_consumer(S.JOBS_STREAM, cfg)
            sub = await js.pull_subscribe_bind(cfg.durable_name or "", stream=S.JOBS_STREAM)
            self._loops.append(asyncio.create_task(self._pull_loop(kind, sub), name=f"worker-{kind}"))
        self._started = True
        log.info("worker started", worker=self.worker_id, stages=list(self._stages))

    async def stop(self) -> None:
        for t in self._loops:
            t.cancel()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)
        self._loops.clear()
        self._mirror.close()
        self._started = False

    async def wait(self) -> None:
        self._require_started("wait")
        await asyncio.gather(*self._loops)

    # ------------------------------------------------------------------ loops
    async def _pull_loop(self, kind: str, sub: object) -> None:
        """One loop per stage kind. An idle long-poll must not hold a concurrency slot
        (that starves the other kinds), so: wait for capacity without taking it, poll,
        and only then take a slot, heartbeating the message while it waits for one."""
        backoff = 0.2
        while True:
            try:
                async with self._sem:
                    pass  # capacity is available now (it may be gone again by the time a job arrives)
                try:
                    msgs = await sub.fetch(1, timeout=5)  # type: ignore[attr-defined]
                except (TimeoutError, NatsTimeout):
                    continue
                for msg in msgs:
                    await self._take_slot(msg)
                    task = asyncio.create_task(self._handle(kind, msg))
                    self._tasks.add(task)
                    task.add_done_callback(self._done)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connection trouble: keep the loop alive, with backoff
                log.warning("pull loop error", stage=kind, error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _take_slot(self, msg: Msg) -> None:
        """Acquire a slot for a fetched job; keep its AckWait from expiring meanwhile."""
        if not self._sem.locked():
            await self._sem.acquire()
            return
        beat = asyncio.create_task(self._heartbeat(msg))
        try:
            await self._sem.acquire()
        finally:
            beat.cancel()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._sem.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("job handler crashed", error=repr(task.exception()))

    async def _handle(self, kind: str, msg: Msg) -> None:
        try:
            job = Job.model_validate_json(msg.data)
        except ValueError as exc:
            log.error("poison job message terminated", stage=kind, error=str(exc)[:300])
            await msg.term()
            return
        delivery = msg.metadata.num_delivered or 1
        began = await self._journal.begin_at(job.job_id, self.worker_id)
        entry = began[0]
        if entry.state == "done" and entry.result is not None:
            rlog_done = RunLogger(self._nc, job.run_id, stage=job.stage, worker=self.worker_id, redactor=self._redact)
            if await self._record(job, entry.result, rlog_done):  # idempotent: same Nats-Msg-Id
                await msg.ack()
            return
        rlog = RunLogger(self._nc, job.run_id, stage=job.stage, worker=self.worker_id, redactor=self._redact)
        execution = _Execution(self, job, delivery, began)
        ctx = StageContext(job, self.worker_id, self._settings, rlog, self._mirror, self._topo, delivery)
        heartbeat = asyncio.create_task(self._heartbeat(msg))
        t0 = time.perf_counter()
        try:
            result = await asyncio.wait_for(self._stages[kind].run(ctx), job.timeout_s)
        except asyncio.CancelledError:
            heartbeat.cancel()
            execution.start.cancel()
            with contextlib.suppress(Exception):
                await msg.nak()  # shutting down: let another worker take it now
            raise
        except Exception as exc:
            failed = await self._on_error(job, msg, exc, delivery, rlog)
            if failed is None:
                await execution.settle()
                return  # nak'ed: JetStream redelivers it
            result = failed
        finally:
            heartbeat.cancel()
            if ctx.workdir.exists():  # a stat: no thread hop for a stage that made no work tree
                await asyncio.to_thread(ctx.cleanup)  # work trees live as long as their stage
        result = self._masked(result)
        finished = JobFinished(
            **self._report_of(job, f"{job.job_id}:finished"),
            outcome=result.outcome,
            failure=result.failure,
            summary=result.summary,
            approval_reasons=result.approval_reasons,
            warnings=result.warnings,
            duration_s=round(time.perf_counter() - t0, 6),
        )
        # keep the job ours while the result is recorded: across a leader election that can take
        # longer than the ack wait, and a redelivery meanwhile would run the stage again (issue 17)
        beat = asyncio.create_task(self._heartbeat(msg))
        try:
            finished = await self._bounded(job, finished, rlog)
            recorded = await self._record(job, finished, rlog, execution)
        finally:
            beat.cancel()
        if recorded:
            await msg.ack()
        else:
            with contextlib.suppress(Exception):
                await msg.nak(delay=self._settings.job_nak_delay_s)  # bus trouble: redelivery re-publishes

    def _masked(self, result: StageResult) -> StageResult:
        """What a stage returns, masked before it leaves the worker (the result event, the run, the
        API): a failure's message and its diagnostics, the warnings, the approval reasons and every
        string of the summary. A stage quoting a device's answer cannot leak a secret through it."""
        mask = self._redact
        failure = result.failure
        if failure is not None:
            failure = failure.model_copy(
                update={
                    "message": mask(failure.message),
                    "diagnostics": [d.model_copy(update={"message": mask(d.message)}) for d in failure.diagnostics],
                }
            )
        return result.model_copy(
            update={
                "failure": failure,
                "summary": mask.tree(result.summary),
                "warnings": [mask(w) for w in result.warnings],
                "approval_reasons": [mask(a) for a in result.approval_reasons],
            }
        )

    def _report_of(self, job: Job, event_id: str, at: datetime | None = None) -> dict[str, Any]:
        """What every report of this worker on ``job`` says; ``at``: when it happened (now)."""
        return {
            "event_id": event_id,
            "occurred_at": at or datetime.now(UTC),
            "job_id": job.job_id,
            "run_id": job.run_id,
            "stage": job.stage,
            "attempt": job.attempt,
            "worker": self.worker_id,
        }

    async def _report_start(self, job: Job, delivery: int, began: datetime) -> None:
        """The start, sent while the stage runs: it says when the stage began, not when the
        report could be sent (the loop may be busy: the engine takes the stage's start from it)."""
        event_id = f"{job.job_id}:started:{delivery}"
        started = JobStarted(**self._report_of(job, event_id, began), delivery=delivery)
        await self._publish(S.result(job.run_id), started.model_dump_json(), msg_id=event_id)

    async def _bounded(self, job: Job, finished: JobFinished, rlog: RunLogger) -> JobFinished:
        """A result that fits in one message (engine/results.py); the full one may go to the object store."""
        finished, raw = serialised(finished)
        if len(raw) <= self._settings.result_inline_max_bytes:
            return finished
        if len(raw) > self._settings.result_max_bytes:
            reason = (
                f"the stage's result is too large ({len(raw)} bytes > {self._settings.result_max_bytes}, "
                "LINTAS_RESULT_MAX_BYTES)"
            )
            await rlog.error(reason)
            kept = inline_part(finished, None, len(raw))  # its first diagnostics still reach the run
            return failed_copy(finished, reason).model_copy(
                update={
                    "failure": StageFailure(
                        message=reason, diagnostics=kept.failure.diagnostics if kept.failure else []
                    )
                }
            )
        ref = S.result_doc(job.run_id, job.stage, job.attempt)
        try:
            await NatsArtifactStore(self._topo.artifacts).put_doc(ref, raw)
        except Exception as exc:
            reason = f"the stage's result ({len(raw)} bytes) could not be stored: {type(exc).__name__}: {exc}"
            await rlog.error(reason[:500])
            return failed_copy(finished, reason[:500])
        await rlog.info(f"result of {len(raw)} bytes stored as {ref}; the run keeps a summary")
        small = inline_part(finished, ref, len(raw))
        if len(small.model_dump_json()) > self._settings.result_inline_max_bytes:
            small = small.model_copy(update={"summary": {"result_ref": ref, "result_bytes": len(raw)}})
        return small

    async def _record(
        self, job: Job, finished: JobFinished, rlog: RunLogger, execution: _Execution | None = None
    ) -> bool:
        """Journal and publish the result. If that fails for the result's sake, the attempt fails
        with the reason instead (never a crashed handler and a redelivery loop); False: the bus
        itself is in trouble and the job should be redelivered. ``execution``: this delivery's
        journal entry and start report (None: re-publishing a recorded result)."""
        try:
            await self._journal_and_publish(job, finished, replace=False, execution=execution)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = f"the stage's result could not be recorded: {type(exc).__name__}: {str(exc)[:300]}"
            log.error("result not recorded", job=job.job_id, error=reason)
        try:
            await rlog.error(reason)
            await self._journal_and_publish(job, failed_copy(finished, reason), replace=True, execution=execution)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("failure not recorded either; job will be redelivered", job=job.job_id, error=repr(exc))
            return False

    async def _journal_and_publish(
        self, job: Job, finished: JobFinished, *, replace: bool, execution: _Execution | None
    ) -> None:
        began = execution.began if execution is not None and not replace else None
        entry = await self._journal.complete(job.job_id, finished, replace=replace, began=began)
        assert entry.result is not None
        if execution is not None:
            await execution.settle()  # a start report goes before the result
        await self._publish_result(entry.result)

    async def _on_error(self, job: Job, msg: Msg, exc: Exception, delivery: int, rlog: RunLogger) -> StageResult | None:
        disp = classify(
            exc,
            delivery=delivery,
            max_deliver=self._settings.job_max_deliver,
            default_delay_s=self._settings.job_nak_delay_s,
        )
        if disp.action == "retry":
            await rlog.warning(f"delivery {delivery} failed, retrying in {disp.delay_s:g}s: {disp.message}")
            await msg.nak(delay=disp.delay_s)
            return None
        diags: list[Diagnostic] = exc.diagnostics if isinstance(exc, InputError) else []
        if isinstance(exc, TimeoutError):
            disp_msg = f"timed out after {job.timeout_s:g}s"
        else:
            disp_msg = self._redact(disp.message)
        dead = disp.action == "dead_letter"
        if dead:
            await self._publish(S.dlq(job.kind), msg.data.decode(), msg_id=f"{job.job_id}:dlq")
            await rlog.error(f"dead-lettered after {delivery} deliveries: {disp_msg}")
        return StageResult(
            outcome="failed", failure=StageFailure(message=disp_msg, diagnostics=diags, dead_lettered=dead)
        )

    async def _heartbeat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_s)
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _publish_result(self, result: JobFinished) -> None:
        await self._publish(S.result(result.run_id), result.model_dump_json(), msg_id=result.event_id)

    async def _publish(self, subject: str, body: str, *, msg_id: str) -> None:
        # retried with the same Nats-Msg-Id across a node loss / leader election (issue 17)
        await publish_acked(
            self._topo.js, subject, body.encode(), msg_id=msg_id, deadline_s=self._settings.nats_retry_s
        )


class _Execution:
    """One execution of a job on this worker: its journal entry (with the revision the result
    is written at) and its ``JobStarted`` report, sent while the stage runs.

    A first delivery is reported only if the stage is still running after
    ``start_report_delay_s``: a short stage's result says all its start would (the engine
    counts the delivery and takes the start from the result's duration), and on a cluster
    each report is a quorum write and an engine input. A redelivery is reported at once (the
    engine warns about it and counts it). The engine ignores a start that arrives after the
    result, and the report, when sent, is published before the result."""

    def __init__(self, worker: Worker, job: Job, delivery: int, began: tuple[JournalEntry, int]) -> None:
        self.began = began
        self._sending = delivery > 1
        self.at = datetime.now(UTC)  # when the stage began
        self.start = asyncio.create_task(self._report(worker, job, delivery))

    async def _report(self, worker: Worker, job: Job, delivery: int) -> None:
        if not self._sending:
            await asyncio.sleep(worker.start_report_delay_s)
            self._sending = True
        await worker._report_start(job, delivery, self.at)

    async def settle(self) -> None:
        """Not sent if the stage ended before it was due; otherwise waited for. One that could
        not be sent is only a warning: the result (which names the worker too) is what counts,
        and the stage has run."""
        if not self._sending:
            self.start.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.start
            return
        try:
            await self.start
        except Exception as exc:
            log.warning("start of job not reported", error=repr(exc))
