"""``lintas twin up <repo> --ref REF`` (issue 18): a twin built by hand to try a change interactively.

The twin stage's path, for an engineer rather than a run, and the twin is **left up**:

1. render ``REF`` of the repository checkout locally (as ``lintas plan``: :mod:`workers.render.local`;
   the render sandbox, no repo code runs) and plan it against what production has deployed (the
   targets store, filtered to this repo as ``lintas plan`` does);
2. build the change's slice (:mod:`workers.twin.slice`: with the changed hosts; ``whole``: every switch) with the holder
   dropped, so it stays until ``lintas twin down NAME``;
3. bring it to production's state, deploy the ref's artifacts through the deploy rollout and run
   verify's checks: :meth:`workers.twin.stage.TwinStage.prove`, the stage's own code.

The rollout reads and writes its bundles through a NATS object store: production's NATS
(``LINTAS_NATS_URL`` or the embedded server of ``lintas up``) when it answers, whose targets store
gives each switch's last deployed artifacts (written there: the ref's rendered blobs,
content-addressed, and the rollout's record under ``twin/explore-<name>/``; production's targets,
leases and deployment records are not touched). When no Lintas answers, a private nats-server
lives for the command only, and the twin starts from day 0 (every switch "new": the whole topology).
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client

from lintas.engine.app import resolve_nats_url
from lintas.engine.artifacts import NatsArtifactStore
from lintas.engine.bus import Topology, connect, ensure_topology
from lintas.engine.contracts import TwinPhase as Phase
from lintas.engine.contracts import TwinReport, TwinSummary
from lintas.engine.errors import LintasError
from lintas.engine.events import Job
from lintas.engine.gitrepo import MirrorCache
from lintas.engine.natsd import EmbeddedNats, free_port
from lintas.engine.runlog import RunLogger
from lintas.engine.settings import Settings
from lintas.engine.stage import StageContext
from lintas.engine.targets import TargetStore
from lintas.workers.deploy.connect import ConnectError
from lintas.workers.lab.cmd import LabError
from lintas.workers.lab.twin import twin_up
from lintas.workers.lab.twin_life import save_record
from lintas.workers.model import load_model
from lintas.workers.render.local import checkout_ref, deployed_of, registered_repo, render_tree
from lintas.workers.render.plan import make_plan
from lintas.workers.twin.leaf_reach import leaf_changes
from lintas.workers.twin.slice import hosts_out_of_scope, out_of_scope, restrict, slice_of
from lintas.workers.twin.stage import TwinStage

CONNECT_TIMEOUT_S = 5.0


@dataclass
class Explored:
    """What ``twin up --ref`` did: the twin (left up), its report and summary, where production's state came from."""

    name: str
    report: TwinReport
    summary: TwinSummary
    source: str  # where the start came from: "production's last deployed artifacts (Lintas at ...)" or "day 0 (...)"
    failure: str | None


@contextlib.asynccontextmanager
async def _bus(settings: Settings) -> AsyncIterator[tuple[Client, Topology, str]]:
    """Production's NATS when it answers, else a private nats-server for this command only; and which."""
    url = resolve_nats_url(settings)
    nc: Client | None = None
    if url is not None:
        with contextlib.suppress(LintasError, OSError, TimeoutError):
            nc = await asyncio.wait_for(connect(settings, url, name="lintas-twin-explore"), CONNECT_TIMEOUT_S)
    with tempfile.TemporaryDirectory(prefix="lintas-twin-nats-") as tmp:
        server: EmbeddedNats | None = None
        if nc is not None:
            source = f"Lintas at {url}"
        else:
            server = EmbeddedNats(Path(tmp), free_port())
            nc = await connect(settings, await server.start(), name="lintas-twin-explore")
            source = f"no Lintas answers at {url}" if url else "no Lintas: LINTAS_NATS_URL unset, no `lintas up`"
        try:
            yield nc, await ensure_topology(nc.jetstream(), settings), source
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
            if server is not None:
                await server.stop()


async def explore(
    settings: Settings, root: Path, ref: str, *, name: str | None = None, whole: bool = False, repo: str | None = None
) -> Explored:
    """Build a twin of ``ref``'s change (its slice, or ``whole``) from production's state, deploy and
    verify ``ref`` on it; the twin stays up whatever the outcome. Raises on a render or build failure."""
    root = await asyncio.to_thread(root.resolve)
    repo = repo or await asyncio.to_thread(registered_repo, root, settings)
    with tempfile.TemporaryDirectory(prefix="lintas-twin-ref-") as tmp:
        tree, sha = await asyncio.to_thread(checkout_ref, root, ref, Path(tmp))
        index, texts = await asyncio.to_thread(render_tree, tree, None)
        model = await asyncio.to_thread(load_model, tree)
        async with _bus(settings) as (nc, topo, source):
            store = NatsArtifactStore(topo.artifacts)
            for arts in texts.values():
                for text in arts.values():
                    await store.put_blob(text.encode())
            deployed = deployed_of(await TargetStore(topo.targets).all(), root, repo)
            baseline = {t: s.artifacts for t, s in deployed.items()}
            label = "deployed" if baseline else "nothing deployed"
            plan = await make_plan(index, baseline, against=label, fetch=store.get_blob, texts=texts)
            cut = slice_of(model, plan, await leaf_changes(model, plan, store.get_blob))
            if not cut.switches and not whole:
                raise LabError(
                    f"nothing to try: {ref} changes no switch of what production runs (--whole builds them all)"
                )
            t = time.monotonic()
            built = await twin_up(
                settings,
                tree,
                name=name,
                only=None if whole or cut.whole else cut.names,
                hosts=cut.host_names or None,
            )
            build = Phase(name="build", seconds=time.monotonic() - t, ok=True)
            built.repo = f"{root} @ {ref}"  # not the temporary work tree it was built from
            save_record(built)
            run_id = f"explore-{built.name}"
            report = TwinReport(
                run_id=run_id,
                sha=sha,
                twin=built.name,
                prefix=built.prefix,
                hosts=sorted(built.hosts),
                slice={n: cut.switches.get(n, ["built by --whole"]) for n in built.switches}
                | {h: cut.hosts[h] for h in built.hosts if h in cut.hosts},
                whole=cut.whole,
                out_of_scope=[*cut.notes, *hosts_out_of_scope(model, built.hosts)],
                phases=[build],
            )
            held = restrict(model, built.switches)
            report.switches = sorted(held.devices)
            report.out_of_scope += out_of_scope(model, held)
            ctx = StageContext(
                _job(run_id, repo or root.name, str(root), ref, sha),
                "twin-explore",
                settings,
                RunLogger(nc, run_id, stage="twin", worker="twin-explore"),
                MirrorCache(settings.cache_dir),
                topo,
            )
            try:
                failure = await TwinStage(settings).prove(ctx, held, plan, report, built.name)
            except (LabError, ConnectError) as exc:  # the twin stays up to look at
                report.error, failure = str(exc), f"twin: {exc}"
    if report.start == "last_deployed":
        source = f"production's last deployed artifacts ({source})"
    else:
        source = f"day 0 ({source}{': nothing deployed' if source.startswith('Lintas at') else ''})"
    summary = TwinSummary.model_validate(TwinStage.result(report, failure).summary)
    summary.report = None  # not stored: printed by the command
    return Explored(built.name, report, summary, source, failure)


def _job(run_id: str, repo: str, url: str, ref: str, sha: str) -> Job:
    return Job(
        job_id=Job.make_id(run_id, "twin", 1),
        run_id=run_id,
        stage="twin",
        kind="twin",
        attempt=1,
        repo=repo,
        url=url,
        ref=ref,
        sha=sha,
        options={},
        timeout_s=3600,
        inputs={},
    )
