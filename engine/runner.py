"""The engine: a thin effects layer around :func:`engine.decide.decide`.

For each input it loads the run, asks ``decide`` what to do, persists the new state
with compare-and-set, and only then carries out the commands. All inputs arrive on
durable consumers, so a killed engine loses nothing: on restart it re-reads every
non-terminal run and feeds it ``Recover``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout

from lintas.engine import admission, freshness
from lintas.engine import subjects as S
from lintas.engine.bus import Topology, engine_consumer_config, publish_acked, retrying
from lintas.engine.commands import (
    Admitted,
    Command,
    DispatchJob,
    EmitLog,
    Enqueue,
    Input,
    PipelineRejected,
    PushReceived,
    Recover,
    ReleaseBranch,
    ResolvePipeline,
    RunRefused,
    StartRun,
    Superseded,
    SupersedeRun,
    Tick,
)
from lintas.engine.decide import Decision, decide
from lintas.engine.errors import ConflictError
from lintas.engine.events import (
    ControlEvent,
    Job,
    JobDeadLettered,
    JobFinished,
    JobStarted,
    LogLine,
    PushEvent,
    ingress_adapter,
    result_adapter,
    run_id_for,
)
from lintas.engine.lifecycle import Service
from lintas.engine.notify import RunNotice
from lintas.engine.redact import Redactor
from lintas.engine.resolver import PipelineResolver
from lintas.engine.settings import Settings
from lintas.engine.state import BranchQueue, Limits, Run, RunState, StageStatus
from lintas.engine.store import BranchStore, RunStore
from lintas.engine.targets import TargetStore

log = structlog.get_logger("lintas.engine")
Clock = Callable[[], datetime]
BranchOp = Callable[[BranchQueue, bool], admission.Admission]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Engine(Service):
    def __init__(
        self,
        nc: Client,
        topology: Topology,
        settings: Settings,
        resolver: PipelineResolver,
        *,
        clock: Clock = utcnow,
        batch: int = 256,
        start_linger_s: float = 0.05,
        redactor: Redactor | None = None,
    ) -> None:
        self._redact = redactor or Redactor()  # what the engine itself writes (the workers mask theirs)
        self._nc = nc
        self._topo = topology
        self._settings = settings
        self._resolver = resolver
        self._clock = clock
        self._batch = batch
        self.runs = RunStore(topology.runs)
        self.branches = BranchStore(topology.branches)
        self._targets = TargetStore(topology.targets)  # deployed commits, cached until the bucket changes
        self._limits = Limits(
            max_deliver=settings.job_max_deliver, ack_wait_s=settings.job_ack_wait_s, grace_s=settings.stage_grace_s
        )
        self._cache: dict[str, tuple[Run, int]] = {}  # non-terminal runs, with their KV revision
        self._branch_cache: dict[str, tuple[BranchQueue, int]] = {}
        self._branch_pending: dict[str, list[tuple[BranchOp, asyncio.Future[list[StartRun | SupersedeRun]]]]] = {}
        self._branch_draining: set[str] = set()
        self._run_locks: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()  # pipeline resolutions in flight
        self._resolving = asyncio.Semaphore(8)  # git work at once
        self._advisory_sub: Any = None
        self._repair: set[str] = set()  # runs whose commands did not all go out: Recover them
        self._dispatching: dict[str, asyncio.Task[None]] = {}  # job id -> its publish, sent beside the save
        self._start_linger_s = start_linger_s
        self._lingering: dict[str, tuple[JobStarted, asyncio.Future[None]]] = {}  # job id -> its start report
        self._terminal: set[str] = set()  # keys of runs known to be over (a terminal run never changes)
        # stream sequence -> the input parsed by the batch scan, and the newer run of its branch in the batch
        self._scanned: dict[int, tuple[Any, str | None]] = {}
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        js = self._topo.js
        for durable, subject in (
            (S.ENGINE_EVENTS_CONSUMER, S.EVENTS_ALL),
            (S.ENGINE_RESULTS_CONSUMER, S.RESULTS_ALL),
        ):
            await js.add_consumer(
                S.EVENTS_STREAM if subject == S.EVENTS_ALL else S.RESULTS_STREAM,
                engine_consumer_config(durable, subject, self._settings.engine_ack_wait_s),
            )
        await self.recover()
        ev_sub = await js.pull_subscribe_bind(S.ENGINE_EVENTS_CONSUMER, stream=S.EVENTS_STREAM)
        res_sub = await js.pull_subscribe_bind(S.ENGINE_RESULTS_CONSUMER, stream=S.RESULTS_STREAM)
        self._advisory_sub = await self._nc.subscribe(S.max_deliveries_advisory(), cb=self._on_advisory)
        self._tasks = [
            asyncio.create_task(self._consume(ev_sub, self._on_ingress, self._scan_pushes), name="engine-events"),
            asyncio.create_task(self._consume(res_sub, self._on_result), name="engine-results"),
            asyncio.create_task(self._ticker(), name="engine-ticker"),
            asyncio.create_task(self._rescanner(), name="engine-rescan"),
        ]
        self._started = True
        log.info("engine started", recovered=len(self._cache))

    async def stop(self) -> None:
        for t in [*self._tasks, *self._background]:
            t.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        self._tasks.clear()
        if self._advisory_sub is not None:
            with contextlib.suppress(Exception):
                await self._advisory_sub.unsubscribe()
        self._started = False

    async def wait(self) -> None:
        self._require_started("wait")
        await asyncio.gather(*self._tasks)

    async def recover(self) -> None:
        """Feed ``Recover`` to every non-terminal run: nothing is left running forever."""
        await self.adopt()

    async def adopt(self) -> int:
        """Take up every non-terminal run this engine does not hold yet, and ``Recover`` it.

        At start this is crash recovery. Run periodically it is how several engines on one
        cluster cover for each other: runs that another (perhaps dead) engine was driving
        are re-driven here; every write is compare-and-set and every re-sent job keeps its
        id, so an engine that is still alive loses nothing and nothing happens twice."""
        fresh: list[str] = []
        held = {RunStore.key(rid) for rid in self._cache}
        for key in await self.runs.keys():
            if key in self._terminal or key in held:
                continue
            got = await self.runs.get(key)
            if got is None:
                continue
            run, rev = got
            if run.state.terminal:
                self._terminal.add(key)
            elif run.run_id not in self._cache:
                self._cache[run.run_id] = (run, rev)
                fresh.append(run.run_id)
        results = await asyncio.gather(*(self.handle(rid, Recover()) for rid in fresh), return_exceptions=True)
        for rid, res in zip(fresh, results, strict=True):
            if isinstance(res, BaseException):
                self._repair.add(rid)
        return len(fresh)

    # ------------------------------------------------------------------ inputs
    async def _consume(
        self,
        sub: Any,
        handler: Callable[[Msg], Awaitable[None]],
        scan: Callable[[list[Msg]], None] | None = None,
    ) -> None:
        """Fetch in full batches; keep up to ``4 * batch`` messages in flight. ``scan`` sees
        each fetched batch whole before its messages are handled.

        Per-run and per-branch locks serialise what must be serialised; push order is
        carried by the stream sequence, so processing order does not matter."""
        slots = asyncio.Semaphore(4 * self._batch)
        inflight: set[asyncio.Task[None]] = set()

        def done(t: asyncio.Task[None]) -> None:
            inflight.discard(t)
            slots.release()

        backoff = 0.2
        while True:
            try:
                for _ in range(self._batch):  # wait for a whole batch of room: fetches stay large
                    await slots.acquire()
                try:
                    msgs = await sub.fetch(self._batch, timeout=5)
                except (TimeoutError, NatsTimeout):
                    msgs = []
                except BaseException:
                    # e.g. no consumer leader during an election: give the room back, or a few
                    # failed fetches would leave no room at all and the loop would wait forever
                    for _ in range(self._batch):
                        slots.release()
                    raise
                for _ in range(self._batch - len(msgs)):
                    slots.release()
                if scan is not None and msgs:
                    scan(msgs)
                for m in msgs:
                    t = asyncio.create_task(self._handle_msg(m, handler))
                    inflight.add(t)
                    t.add_done_callback(done)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer loop error", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _handle_msg(self, msg: Msg, handler: Callable[[Msg], Awaitable[None]]) -> None:
        try:
            await handler(msg)
        except ValueError as exc:  # pydantic ValidationError: a poison message
            log.error("invalid message terminated", subject=msg.subject, error=str(exc)[:500])
            await msg.term()
            return
        except Exception as exc:
            log.warning("input failed, will be redelivered", subject=msg.subject, error=repr(exc))
            await msg.nak(delay=1)
            return
        await msg.ack()

    def _scan_pushes(self, msgs: list[Msg]) -> None:
        """Parse a fetched batch of inputs once, and find the pushes superseded at birth by a
        newer push of their branch in the batch (:func:`engine.admission.superseded_in_batch`,
        :func:`engine.decide._born_superseded`; in a burst of pushes to one branch, most runs):
        one write each, instead of a run saved ``queued``, enqueued, then saved ``superseded``."""
        pushes: dict[int, PushEvent] = {}
        for m in msgs:
            seq = _stream_seq(m)
            try:
                ev = ingress_adapter.validate_json(m.data)
            except ValueError:
                continue  # not parsed here: its handler terminates the poison message
            if seq is None:
                continue
            self._scanned[seq] = (ev, None)
            if isinstance(ev, PushEvent):
                pushes[seq] = ev
        batch = [(q, e.repo, e.ref, e.sha, e.before) for q, e in pushes.items()]
        for seq, newer in admission.superseded_in_batch(batch).items():
            self._scanned[seq] = (pushes[seq], pushes[newer].run_id)

    async def _on_ingress(self, msg: Msg) -> None:
        scanned = self._scanned.pop(_stream_seq(msg) or 0, None)
        ev, superseded_by = scanned or (ingress_adapter.validate_json(msg.data), None)
        again = _redelivered(msg)
        if isinstance(ev, PushEvent):
            push = PushReceived(event=ev, seq=msg.metadata.sequence.stream, superseded_by=superseded_by)
            await self.handle(ev.run_id, push, redelivered=again)
        elif ev.action == "retry":
            await self._retry(ev)
        else:
            await self.handle(ev.run_id, ev, redelivered=again)

    async def _on_result(self, msg: Msg) -> None:
        ev = result_adapter.validate_json(msg.data)
        again = _redelivered(msg)
        if isinstance(ev, JobStarted) and self._start_linger_s > 0:
            await self._linger(ev, again)
            return
        if isinstance(ev, JobFinished):
            started = self._lingering.pop(ev.job_id, None)
            if started is not None:
                # the job's start report is still waiting: both in one decision and one save
                try:
                    await self.handle(ev.run_id, started[0], redelivered=again, then=ev)
                except BaseException as exc:
                    started[1].set_exception(exc)
                    raise
                started[1].set_result(None)
                return
        await self.handle(ev.run_id, ev, redelivered=again)

    async def _linger(self, ev: JobStarted, redelivered: bool) -> None:
        """A start report waits a moment for its job's result: a short stage's start and result
        then cost one run write, not two (each a quorum write on a cluster). The report is acked
        only once saved (alone after the wait, or with the result), so a crash loses nothing."""
        if ev.job_id in self._lingering:  # another delivery's start is waiting already: no second wait
            await self.handle(ev.run_id, ev, redelivered=redelivered)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._lingering[ev.job_id] = (ev, fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self._start_linger_s)
            return  # saved with the result
        except TimeoutError:
            pass
        if self._lingering.get(ev.job_id, (None, None))[1] is fut:
            del self._lingering[ev.job_id]
            await self.handle(ev.run_id, ev, redelivered=redelivered)
        else:
            await fut  # the result took it just now

    async def _on_advisory(self, msg: Msg) -> None:
        """JetStream gave up on a job without a worker reporting it (worker died on the last try)."""
        try:
            adv = json.loads(msg.data)
            wait = self._settings.nats_retry_s
            raw = await retrying(
                lambda: self._topo.js.get_msg(S.JOBS_STREAM, int(adv["stream_seq"])), deadline_s=wait, what="dead job"
            )
            job = Job.model_validate_json(raw.data or b"")
            await publish_acked(
                self._topo.js, S.dlq(job.kind), raw.data or b"", msg_id=f"{job.job_id}:dlq", deadline_s=wait
            )
            with contextlib.suppress(Exception):
                await retrying(
                    lambda: self._topo.js.delete_msg(S.JOBS_STREAM, int(adv["stream_seq"])),
                    deadline_s=wait,
                    what="delete dead job",
                )
            await self.handle(
                job.run_id,
                JobDeadLettered(
                    event_id=f"{job.job_id}:dead",
                    occurred_at=self._clock(),
                    job_id=job.job_id,
                    run_id=job.run_id,
                    stage=job.stage,
                    attempt=job.attempt,
                    reason=f"max deliveries ({adv.get('deliveries')}) reached",
                ),
            )
        except Exception as exc:
            log.warning("cannot process max-deliveries advisory", error=repr(exc))

    async def _retry(self, ev: ControlEvent) -> None:
        got = await self.runs.get(RunStore.key(ev.run_id))
        if got is None:
            return
        old = got[0]
        if not old.state.terminal:
            await self._emit_log(ev.run_id, f"retry by {ev.actor} ignored: run is {old.state}", "warning")
            return
        # derived from the control event: a redelivered retry request gives the same run
        push = self._push_again(old, f"retry:{old.run_id}:{ev.event_id}", "retry", ev.actor)
        await self.handle(push.run_id, push)
        await self._emit_log(ev.run_id, f"retried by {ev.actor} as run {push.run_id}")

    # ------------------------------------------------------------------ the loop body
    async def handle(
        self, run_id: str, inp: Input, *, redelivered: bool = False, then: Input | None = None
    ) -> Run | None:
        """Decide ``inp`` (and ``then``, on the result: one save for both), save, carry out."""
        run, commands = await self._apply(run_id, inp, then)
        if not commands and run is not None and _ahead(run, inp):
            # A report on the stage's next attempt, which the saved run has not dispatched: the
            # job went out beside a save that did not land (the engine died in between). The
            # input that dispatches it again comes back (it was not acked); so does this one.
            raise AheadOfRunError(f"run {run_id}: a report on a job not dispatched yet, will be redelivered")
        if redelivered and not commands and run is not None and not run.state.terminal:
            # A redelivered input that changes nothing: whoever handled it first (another
            # engine, or this one before a failure) saved the new state and may have died
            # before its effects went out. Re-derive them from the saved state; re-sent jobs
            # keep their ids, so nothing runs twice.
            run, commands = await self._apply(run_id, Recover())
        # Log lines first: later commands may recurse into other decisions, whose logs follow.
        try:
            for cmd in sorted(commands, key=lambda c: not isinstance(c, EmitLog)):
                await self._execute(cmd)
        except Exception:
            # The new state is saved but some effects did not go out (NATS lost a node for
            # longer than the retries): a redelivered input would decide "nothing to do", so
            # the ticker re-derives the effects from the saved state with Recover.
            self._repair.add(run_id)
            raise
        return run

    async def _apply(self, run_id: str, inp: Input, then: Input | None = None) -> tuple[Run | None, list[Command]]:
        lock = self._run_locks.setdefault(run_id, asyncio.Lock())
        async with lock:
            optimistic = isinstance(inp, PushReceived) and run_id not in self._cache
            for _ in range(20):
                # A push almost always names a new run: try the create first, read only on conflict.
                current = None if optimistic else await self._load(run_id)
                optimistic = False
                cached = current is not None and self._cache.get(run_id) is current
                run, rev = current if current else (None, 0)
                now = self._clock()
                d = decide(run, inp, now, self._limits)
                if then is not None and d.run is not None:
                    # one decision for both; when ``then`` is the pipeline, the start's own request
                    # to resolve it is already done
                    d2 = decide(d.run, then, now, self._limits)
                    cmds: list[Command] = [c for c in d.commands if not isinstance(c, ResolvePipeline)]
                    d = Decision(d2.run, cmds + d2.commands)
                if d.run is None or (run is not None and d.run == run):
                    if cached and await self._stale(run_id, rev):
                        continue  # another engine moved the run on: decide again on what it wrote
                    return d.run, d.commands
                early = self._dispatch_early(run, d.commands)
                try:
                    await self._save(d.run, rev if run is not None else None)
                except ConflictError:
                    self._cache.pop(run_id, None)
                    await self._drop_early(early)
                    continue
                except BaseException:
                    await self._drop_early(early)
                    raise
                return d.run, d.commands
            raise ConflictError(f"run {run_id}: could not apply {type(inp).__name__} (contention)")

    def _dispatch_early(self, run: Run | None, commands: list[Command]) -> list[str]:
        """Send the decision's jobs while its save is in flight (on a cluster each is a quorum
        write: one after the other, they were most of a stage transition).

        Only for a run whose pipeline was already saved: the job can only name a stage the
        saved run has. Crash between the two: the job may run, and its reports arrive before
        the run knows it; :func:`_ahead` sends them back until the redelivered input that
        dispatched it is decided again (same job id: the stream drops the second publish)."""
        if run is None or run.pipeline is None:
            return []
        ids: list[str] = []
        for cmd in commands:
            if isinstance(cmd, DispatchJob) and cmd.job.job_id not in self._dispatching:
                self._dispatching[cmd.job.job_id] = asyncio.create_task(self._publish_job(cmd.job))
                ids.append(cmd.job.job_id)
        return ids

    async def _drop_early(self, ids: list[str]) -> None:
        """The save did not land: the jobs sent beside it are settled (not cancelled midway:
        a publish either landed or not; a decision taken again re-sends them by id)."""
        tasks = [self._dispatching.pop(i) for i in ids if i in self._dispatching]
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _publish_job(self, job: Job) -> None:
        await publish_acked(
            self._topo.js,
            S.job(job.kind),
            job.model_dump_json().encode(),
            msg_id=job.job_id,
            deadline_s=self._settings.nats_retry_s,
        )

    async def _stale(self, run_id: str, rev: int) -> bool:
        """Whether the cached copy is behind KV (a no-op decision on a cached run is checked:
        with several engines, a cached copy may miss what another engine wrote, and a
        decision that writes nothing would never find out through compare-and-set)."""
        got = await self.runs.get(RunStore.key(run_id))
        if got is None or got[1] == rev:
            return False
        if got[0].state.terminal:
            self._cache.pop(run_id, None)
        else:
            self._cache[run_id] = got
        return True

    async def _load(self, run_id: str) -> tuple[Run, int] | None:
        cached = self._cache.get(run_id)
        if cached is not None:
            return cached
        return await self.runs.get(RunStore.key(run_id))

    async def _save(self, run: Run, rev: int | None) -> None:
        key = RunStore.key(run.run_id)
        if rev is None:
            new_rev = await self.runs.create(key, run)
            if new_rev is None:
                raise ConflictError(f"{key} exists")
        else:
            new_rev = await self.runs.update(key, run, rev)
        if run.state.terminal:
            self._cache.pop(run.run_id, None)
            self._run_locks.pop(run.run_id, None)
            self._terminal.add(key)
        else:
            self._cache[run.run_id] = (run, new_rev)
        await self._nc.publish(S.notify(run.run_id), RunNotice.of(run, new_rev).model_dump_json().encode())

    # ------------------------------------------------------------------ commands
    async def _execute(self, cmd: Command) -> None:
        if isinstance(cmd, DispatchJob):
            early = self._dispatching.pop(cmd.job.job_id, None)
            if early is not None:
                await early  # sent beside the save; a failure is raised here, as a late publish's would be
            else:
                await self._publish_job(cmd.job)
        elif isinstance(cmd, EmitLog):
            await self._emit_log(cmd.run_id, cmd.message, cmd.level, cmd.stage)
        elif isinstance(cmd, Enqueue):
            await self._branch_op(
                cmd.repo,
                cmd.ref,
                lambda q, fin: admission.enqueue(q, cmd.run_id, cmd.sha, cmd.seq, active_finished=fin),
            )
        elif isinstance(cmd, ReleaseBranch):
            if self._release_is_noop(cmd):
                return
            await self._branch_op(cmd.repo, cmd.ref, lambda q, fin: admission.release(q, cmd.run_id))
        elif isinstance(cmd, StartRun):
            self._start_bg(cmd.run_id)
        elif isinstance(cmd, SupersedeRun):
            await self.handle(cmd.run_id, Superseded(by=cmd.by))
        elif isinstance(cmd, ResolvePipeline):
            self._start_bg(cmd.run_id)

    def _start_bg(self, run_id: str) -> None:
        """Start a run (or resolve the pipeline of one started without it), in the background.

        Reading the pipeline is git work: it must not hold up the input that admitted the run
        (ingest). The run stays ``queued`` meanwhile, and the branch has admitted it, so a crash
        here is recovered (``Recover`` of a queued run admits it again)."""
        task = asyncio.create_task(self._start_guarded(run_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _start_guarded(self, run_id: str) -> None:
        async with self._resolving:
            try:
                await self._start(run_id)
            except Exception as exc:
                log.warning("starting the run failed, will retry", run=run_id, error=repr(exc))
                self._repair.add(run_id)

    async def _start(self, run_id: str) -> None:
        """Resolve the pipeline first, then save ``Admitted`` and the outcome in one write (one
        quorum write fewer per run than saving the start on its own). A run that is over (it was
        canceled while queued) is only admitted, which releases its branch."""
        current = await self._load(run_id)
        if current is None:
            return
        run = current[0]
        if run.state.terminal or run.pipeline is not None:
            await self.handle(run_id, Admitted())
            return
        outcome: Input
        for attempt in range(3):
            try:
                outcome = await asyncio.to_thread(self._resolver.resolve, run, await self._deployed(run))
                break
            except Exception as exc:  # git trouble that is not the repo's fault: retry, then fail loudly
                if attempt == 2:
                    outcome = PipelineRejected(message=f"cannot read the pipeline: {type(exc).__name__}: {exc}")
                else:
                    await asyncio.sleep(0.5 * (attempt + 1))
        if isinstance(outcome, PipelineRejected | RunRefused):  # git's and the repo's text: masked
            outcome = self._redact.model(outcome)
        if isinstance(outcome, RunRefused) and outcome.head is not None:
            # the head's run first, then the refusal: an engine dying between the two leaves the stale
            # run queued, so it is started (and refused) again, and the head's run (its id derives from
            # the stale run's) is made once. The other order lost the head for good: a refused run is
            # over, and nothing starts it again.
            await self._run_head(run, outcome.head)
        await self.handle(run_id, Admitted(), then=outcome)

    async def _run_head(self, stale: Run, head: str) -> None:
        """``stale`` was refused: its branch's head is ``head``. If the head's own push was
        superseded by ``stale`` (it reached the stream first, or queued while the branch was
        busy, and the older push took its place by stream order), nothing would run the head:
        a run for it is created (source ``reconcile``: Lintas's own run for the branch head),
        once (its id derives from the refused run's)."""
        head_run = run_id_for(PushEvent.dedup_key(stale.repo, stale.ref, head))
        got = await self.runs.get(RunStore.key(head_run))
        if got is None or got[0].state is not RunState.superseded or got[0].superseded_by != stale.run_id:
            return  # the head has its run, or its push is still to come
        push = self._push_again(got[0], f"reconcile:{stale.run_id}", "reconcile", got[0].author)
        await self.handle(push.run_id, push)
        await self._emit_log(
            stale.run_id,
            f"the head {head[:12]}'s own run {head_run} was superseded by this stale push: run {push.run_id} runs the head",
            "warning",
        )

    def _push_again(self, run: Run, event_id: str, source: Literal["retry", "reconcile"], author: str) -> PushEvent:
        """A new push of ``run``'s commit (a retry, or the head run again), ``event_id`` derived
        from what asked for it so that asking twice gives one run."""
        return PushEvent(
            event_id=event_id,
            occurred_at=self._clock(),
            repo=run.repo,
            url=run.url,
            ref=run.ref,
            before=run.before,
            sha=run.sha,
            author=author,
            message=run.message,
            source=source,
            retry_of=run.run_id if source == "retry" else None,
        )

    async def _deployed(self, run: Run) -> list[str]:
        """Commits deployed from the run's repo: a push older than one of them is refused (engine/freshness.py)."""
        if run.source not in freshness.CHECKED_SOURCES | freshness.OPERATOR_SOURCES:
            return []
        try:
            return await self._targets.deployed_commits(run.repo)
        except Exception as exc:
            log.warning("deployed commits unknown: only the branch head is checked", run=run.run_id, error=repr(exc))
            return []

    async def _branch_op(self, repo: str, ref: str, op: BranchOp) -> None:
        """Apply an admission op to a branch queue; ops that pile up while a write is in
        flight are applied together in one compare-and-set write (group commit)."""
        key = BranchStore.key(repo, ref)
        fut: asyncio.Future[list[StartRun | SupersedeRun]] = asyncio.get_running_loop().create_future()
        self._branch_pending.setdefault(key, []).append((op, fut))
        if key not in self._branch_draining:
            self._branch_draining.add(key)
            try:
                while self._branch_pending.get(key):
                    batch = self._branch_pending.pop(key)
                    try:
                        results = await self._commit_branch(key, repo, ref, [o for o, _ in batch])
                    except Exception as exc:
                        for _, f in batch:
                            if not f.done():  # its caller was cancelled (the engine stops)
                                f.set_exception(exc)
                    else:
                        for (_, f), cmds in zip(batch, results, strict=True):
                            if not f.done():
                                f.set_result(cmds)
            finally:
                self._branch_draining.discard(key)
        for c in await fut:
            await self._execute(c)

    def _release_is_noop(self, cmd: ReleaseBranch) -> bool:
        """Whether releasing would change nothing, as the group commit would find: the branch's
        cached queue holds the run neither active nor queued, and no op on it is pending (a run
        superseded by an enqueue is already out of the queue: most pushes of a burst)."""
        key = BranchStore.key(cmd.repo, cmd.ref)
        cached = self._branch_cache.get(key)
        if cached is None or key in self._branch_draining or self._branch_pending.get(key):
            return False
        queue = cached[0]
        return queue.active != cmd.run_id and all(e.run_id != cmd.run_id for e in queue.queued)

    async def _commit_branch(
        self, key: str, repo: str, ref: str, ops: list[BranchOp]
    ) -> list[list[StartRun | SupersedeRun]]:
        for _ in range(20):
            got = self._branch_cache.get(key) or await self.branches.get(key)
            queue, rev = got if got else (BranchQueue(repo=repo, ref=ref), None)
            results: list[list[StartRun | SupersedeRun]] = []
            q = queue
            for op in ops:
                finished = False
                if q.active is not None:
                    if RunStore.key(q.active) in self._terminal:
                        finished = True  # known over (a terminal run never changes): no read
                    else:
                        active = await self._load(q.active)
                        finished = active is None or active[0].state.terminal
                out = op(q, finished)
                q = out.queue
                results.append(out.commands)
            if q == queue:
                return results
            try:
                if rev is None:
                    new_rev = await self.branches.create(key, q)
                    if new_rev is None:
                        continue
                else:
                    new_rev = await self.branches.update(key, q, rev)
            except ConflictError:
                self._branch_cache.pop(key, None)  # another engine wrote it: re-read
                continue
            self._branch_cache[key] = (q, new_rev)
            return results
        raise ConflictError(f"branch {repo} {ref}: contention")

    async def _emit_log(
        self, run_id: str, message: str, level: Literal["info", "warning", "error"] = "info", stage: str | None = None
    ) -> None:
        message = self._redact(message)
        line = LogLine(run_id=run_id, stage=stage, ts=self._clock(), level=level, message=message, worker="engine")
        getattr(log, level)(message, run=run_id, stage=stage)
        await self._nc.publish(S.run_log(run_id), line.model_dump_json().encode())

    # ------------------------------------------------------------------ time
    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._settings.tick_s)
            for rid in list(self._repair):
                self._repair.discard(rid)
                try:
                    await self.handle(rid, Recover())
                except Exception as exc:  # handle() put it back: next tick
                    log.warning("repair failed, will retry", run=rid, error=repr(exc))
            now = self._clock()
            due = [rid for rid, (run, _) in list(self._cache.items()) if _due(run, now)]
            for rid in due:
                try:
                    await self.handle(rid, Tick())
                except Exception as exc:
                    log.warning("tick failed", run=rid, error=repr(exc))

    async def _rescanner(self) -> None:
        every = self._settings.engine_rescan_s
        if every <= 0:
            return
        while True:
            await asyncio.sleep(every)
            try:
                n = await self.adopt()
                if n:
                    log.info("adopted runs", count=n)
            except Exception as exc:
                log.warning("rescan failed", error=repr(exc))


class AheadOfRunError(Exception):
    """A report on a job the saved run has not dispatched yet: nak'ed, redelivered later."""


def _ahead(run: Run, inp: Input) -> bool:
    """Whether ``inp`` reports on the next attempt of a stage that is still pending (see
    :meth:`Engine._dispatch_early`)."""
    if not isinstance(inp, JobStarted | JobFinished | JobDeadLettered) or run.state.terminal:
        return False
    rec = run.stages.get(inp.stage)
    return (
        rec is not None
        and rec.status is StageStatus.pending
        and inp.job_id == Job.make_id(run.run_id, inp.stage, rec.attempt + 1)
    )


def _stream_seq(msg: Msg) -> int | None:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:  # not a JetStream message (tests feed plain ones)
        return None


def _redelivered(msg: Msg) -> bool:
    try:
        return (msg.metadata.num_delivered or 1) > 1
    except Exception:  # not a JetStream message (tests feed plain ones)
        return False


def _due(run: Run, now: datetime) -> bool:
    for rec in run.stages.values():
        if rec.status is StageStatus.running and rec.deadline is not None and now >= rec.deadline:
            return True
        if rec.status is StageStatus.pending and rec.not_before is not None and now >= rec.not_before:
            return True
    return False
