"""The `lintas` command line."""

from __future__ import annotations

import asyncio
import faulthandler
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, get_args

import typer

from lintas.engine import aio, logs, queries
from lintas.engine.app import build_stages, make_engine, nats_session, redactor_for, resolve_nats_url, stack
from lintas.engine.cli import daemon
from lintas.engine.cli.output import make_console
from lintas.engine.client import control, emit_or_spool, publish_control, publish_push
from lintas.engine.errors import InputError, LintasError
from lintas.engine.events import Action, PushEvent, manual_event_id
from lintas.engine.infra_repo import init_infra_repo
from lintas.engine.repos import RepoEntry, RepoRegistry
from lintas.engine.settings import Settings
from lintas.engine.stage import LocalStage, StageResult
from lintas.engine.worker import Worker

app = typer.Typer(
    help="Lintas: git push -> NATS JetStream -> audited, reversible infrastructure pipelines.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
emit_app = typer.Typer(help="Publish events (used by git hooks).")
app.add_typer(emit_app, name="emit")
spool_app = typer.Typer(help="Events the git hook spooled while NATS did not answer.")
app.add_typer(spool_app, name="spool")
console = make_console()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"lintas {version('lintas')}")
        except PackageNotFoundError:
            console.print("lintas (not installed)")
        raise typer.Exit(0)


@app.callback()
def _main(
    _version_: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Lintas: git push -> NATS JetStream -> audited, reversible infrastructure pipelines.
    Shell completion: `lintas --install-completion` (bash, zsh, fish)."""


err = make_console(stderr=True)


def _settings() -> Settings:
    s = Settings()
    logs.configure(s.log_level, s.log_format)
    return s


def _run(coro: object) -> None:
    # a crash in a C library (libvirt, ovs, napalm's ssh) prints every thread's Python stack to
    # stderr (the log of `lintas up --detach`) instead of leaving a process that vanished silently
    faulthandler.enable()
    try:
        aio.run(coro)  # type: ignore[arg-type]
    except LintasError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@app.command()
def up(
    concurrency: Annotated[int, typer.Option(help="jobs in flight per stage worker")] = 4,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="run in the background; stop with `lintas down`")
    ] = False,
    cluster: Annotated[
        int, typer.Option(help="start N local nats-server nodes with routes (R3 streams) instead of one")
    ] = 0,
) -> None:
    """Run everything: embedded nats-server (unless LINTAS_NATS_URL), engine, one worker per stage."""
    settings = _settings()
    if detach:
        daemon.start_detached(settings, ["up", "--concurrency", str(concurrency), "--cluster", str(cluster)])
        console.print(f"lintas is up in the background (log: {daemon.log_file(settings)}); stop it with `lintas down`")
        return

    async def main() -> None:
        async with stack(settings, worker_concurrency=concurrency, api=True, cluster=cluster) as st:
            console.print(f"[bold green]lintas up[/]  home: {settings.home}")
            embedded = f"  (embedded, data in {settings.nats_dir})" if st.embedded else ""
            if st.cluster:
                embedded = (
                    f"  (local cluster of {len(st.cluster.nodes)}, R{st.settings.streams.replicas}, "
                    f"data in {st.cluster.data_dir})"
                )
            console.print(f"  nats:      {st.nats_url}{embedded}")
            console.print(f"  stages:    {', '.join(k for w in st.workers for k in w.kinds)}")
            console.print(f"  spool:     {settings.spool_dir}")
            console.print(f"  work dirs: {settings.work_dir}")
            console.print(f"  repos:     {settings.home / 'repos.json'}")
            console.print(
                f"  dashboard: http://{settings.api_addr}/ui/  (API: /api/v1/runs, docs: /docs, LINTAS_API_ADDR)"
            )
            console.print("  stop with Ctrl-C or `lintas down`")
            daemon.mark_ready(settings)
            try:
                await _until_signal()
            finally:
                daemon.clear_ready(settings)

    _run(main())


@app.command()
def down(timeout: Annotated[float, typer.Option()] = 30.0) -> None:
    """Stop a `lintas up --detach` started with this LINTAS_HOME."""
    settings = _settings()
    if daemon.stop_detached(settings, timeout):
        console.print("lintas stopped")
    else:
        console.print("lintas was not running")


@app.command("engine")
def engine_cmd() -> None:
    """Run only the orchestrator (point LINTAS_NATS_URL at NATS)."""
    settings = _settings()

    async def main() -> None:
        async with nats_session(settings, name="lintas-engine") as (nc, topo), make_engine(nc, topo, settings):
            await _until_signal()

    _run(main())


@app.command()
def worker(
    stage: Annotated[list[str], typer.Option(help="stage kind(s) to serve; repeatable")],
    concurrency: Annotated[int, typer.Option(help="jobs in flight")] = 4,
) -> None:
    """Run a worker for the given stage(s); run as many as you like, anywhere."""
    settings = _settings()

    async def main() -> None:
        async with nats_session(settings, name="lintas-worker") as (nc, topo):
            w = Worker(
                nc,
                topo,
                settings,
                build_stages(settings, stage),
                concurrency=concurrency,
                redactor=redactor_for(settings),
            )
            async with w:
                await _until_signal()

    _run(main())


@app.command("api")
def api_cmd() -> None:
    """Serve only the status API and dashboard on LINTAS_API_ADDR, against LINTAS_NATS_URL
    (or the embedded NATS of a running `lintas up`)."""
    from lintas.engine.api.app import serving

    settings = _settings()

    async def main() -> None:
        async with (
            nats_session(settings, name="lintas-api") as (nc, topo),
            serving(nc, topo, settings, redactor_for(settings)),
        ):
            console.print(
                f"[bold green]lintas api[/]  dashboard: http://{settings.api_addr}/ui/  "
                f"API: http://{settings.api_addr}/api/v1/runs  (docs: /docs)"
            )
            await _until_signal()

    _run(main())


@app.command()
def init(directory: Path) -> None:
    """Create DIR.git (bare, with the post-receive hook) and a working clone DIR from the template."""
    settings = _settings()
    bare, work = init_infra_repo(directory, settings.home)
    RepoRegistry(settings.home).add(RepoEntry(name=work.name, url=str(bare)))
    console.print(f"created {bare} (hook installed) and working clone {work}")
    console.print(f"next: cd {work} && edit && git commit -am '...' && git push")


@emit_app.command("push")
def emit_push(
    git_dir: Annotated[Path, typer.Option()],
    repo: Annotated[str, typer.Option()],
    url: Annotated[str, typer.Option()],
) -> None:
    """Read `old new ref` lines (post-receive stdin) and publish one push event per updated ref."""
    import git

    settings = _settings()
    g = git.Git(str(git_dir))
    events: list[PushEvent] = []
    for line in sys.stdin.read().splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        old, new, ref = parts
        if set(new) == {"0"}:
            continue  # branch deleted: nothing to deploy
        author, _, message = g.log("-1", "--format=%an <%ae>%x00%B", new).partition("\0")
        events.append(
            PushEvent(
                event_id=PushEvent.dedup_key(repo, ref, new),
                occurred_at=datetime.now(UTC),
                repo=repo,
                url=url,
                ref=ref,
                before=None if set(old) == {"0"} else old,
                sha=new,
                author=author.strip(),
                message=message.strip()[:2000],
                source="hook",
            )
        )
    if events:
        outcome = aio.run(emit_or_spool(settings, resolve_nats_url(settings), events))
        print(f"lintas: {outcome}", flush=True)  # git relays this to the pusher as "remote: ..."


@spool_app.command("flush")
def spool_flush(
    watch: Annotated[bool, typer.Option("--watch", help="keep flushing (run beside the git server)")] = False,
    every: Annotated[float, typer.Option(help="seconds between flushes with --watch")] = 2.0,
) -> None:
    """Publish the events the git hook spooled under LINTAS_HOME/spool (each becomes one run)."""
    from lintas.engine.app import spool_flusher
    from lintas.engine.client import flush_spool
    from lintas.engine.errors import ConfigError
    from lintas.engine.spool import Spool

    settings = _settings()

    async def main() -> None:
        url = resolve_nats_url(settings)
        if url is None:
            raise ConfigError("no NATS: set LINTAS_NATS_URL")
        if watch:
            flusher = asyncio.create_task(spool_flusher(settings, url, every))
            await _until_signal()
            flusher.cancel()
            return
        n = await flush_spool(settings, url)
        left = len(Spool(settings.spool_dir).pending())
        console.print(f"flushed {n} spooled event(s); {left} left")

    _run(main())


def _local_stage(kind: str, settings: Settings) -> LocalStage:
    stage = build_stages(settings, [kind])[0]
    if not isinstance(stage, LocalStage):
        err.print(f"[red]error:[/] stage {kind!r} cannot run locally")
        raise typer.Exit(2)
    return stage


def _print_result(result: StageResult) -> None:
    failure = result.failure
    for d in failure.diagnostics if failure else []:
        console.print(str(d), markup=False, highlight=False, soft_wrap=True)
    if failure is not None:
        err.print(f"[red]{len(failure.diagnostics) or 1} problem(s)[/]")
        raise typer.Exit(1)


@app.command("validate")
def validate_cmd(path: Annotated[Path, typer.Argument()] = Path(".")) -> None:
    """Check a working copy (no NATS needed): every error with file:line; exit 1 on errors."""
    settings = _settings()
    result = _local_stage("validate", settings).run_local(path.resolve())
    _print_result(result)
    s = result.summary
    what = ", ".join(f"{s[k]} {k}" for k in ("devices", "hosts", "instances", "networks") if k in s)
    templates = s.get("templates", "not rendered (no infra model)")
    console.print(
        f"valid: {s.get('files_checked', 0)} file(s)"
        + (f"; model: {what}" if what else "")
        + f"; templates: {templates}"
    )


@app.command("plan")
def plan_cmd(
    path: Annotated[Path, typer.Argument()] = Path("."),
    against: Annotated[
        str | None, typer.Option(help="git ref to compare with (default: deployed state, else HEAD)")
    ] = None,
    repo: Annotated[
        str | None,
        typer.Option(
            help="the registered repo this working copy is, whose deployed "
            "targets are the baseline (default: found from its remotes)"
        ),
    ] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Validate, render and show the per-device plan of a working copy (like `terraform plan`)."""
    from lintas.engine.cli.output import print_plan

    settings = _settings()
    result = _local_stage("render", settings).run_local(path.resolve(), against=against, repo=repo)
    _print_result(result)
    print_plan(console, result.summary["plan"], json_)


policy_app = typer.Typer(help="Policy as code (Rego): the built-in library plus a repo's policies/.")
app.add_typer(policy_app, name="policy")


@policy_app.command("test")
def policy_test_cmd(
    path: Annotated[Path | None, typer.Argument(help="infra repo whose policies/ to include")] = None,
    json_: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run every Rego unit test (built-in and PATH/policies); pass/fail table; exit 1 on failure."""
    import json

    from lintas.engine.cli.output import table

    settings = _settings()
    stage = build_stages(settings, ["policy"])[0]
    try:
        out = stage.unit_tests(path.resolve() if path else None)  # type: ignore[attr-defined]
    except InputError as exc:  # a module that does not parse: file:line
        for d in exc.diagnostics:
            console.print(str(d), markup=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except LintasError as exc:  # the engine failed (OPA unreachable, timeout): fail closed
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    if json_:
        console.print_json(json.dumps(out))
    else:
        table(console, out["columns"], [[str(row[c]) for c in out["columns"]] for row in out["tests"]])
        console.print(f"{out['passed']} passed, {out['failed']} failed ({out['backend']}, {out['duration_s']} s)")
    raise typer.Exit(0 if out["ok"] else 1)


@app.command()
def trigger(
    repo: Annotated[str, typer.Option()],
    ref: Annotated[str, typer.Option()] = "main",
    sha: Annotated[str | None, typer.Option()] = None,
    url: Annotated[str | None, typer.Option(help="fetch URL; default: the registered repo")] = None,
    actor: Annotated[str, typer.Option()] = os.environ.get("USER", "cli"),
) -> None:
    """Publish a manual push event: a new run even for an already-built commit."""
    import git

    settings = _settings()
    entry = RepoRegistry(settings.home).get(repo)
    fetch_url = url or (entry.url if entry else None)
    if fetch_url is None:
        err.print(f"[red]error:[/] unknown repo {repo!r}: give --url or create it with `lintas init`")
        raise typer.Exit(2)
    full_ref = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
    if sha is None:
        out = str(git.Git().ls_remote(fetch_url, full_ref)).split()
        if not out:
            err.print(f"[red]error:[/] {full_ref} not found in {fetch_url}")
            raise typer.Exit(2)
        sha = out[0]
    ev = PushEvent(
        event_id=manual_event_id(),
        occurred_at=datetime.now(UTC),
        repo=repo,
        url=fetch_url,
        ref=full_ref,
        sha=sha,
        author=actor,
        message="manual trigger",
        source="manual",
    )

    async def main() -> None:
        async with nats_session(settings, name="lintas-cli") as (_nc, topo):
            await publish_push(topo.js, ev)
        console.print(ev.run_id)

    _run(main())


@app.command()
def runs(
    repo: Annotated[str | None, typer.Option()] = None,
    state: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option()] = 50,
    json_: Annotated[bool, typer.Option("--json", help="stable JSON (see README)")] = False,
    output: Annotated[str, typer.Option("-o", "--output", help="wide: every column, untruncated")] = "",
) -> None:
    """List runs, newest first. In a terminal it fits 80 columns (-o wide for everything);
    piped, it prints every column untruncated."""
    from lintas.engine.cli.output import print_runs

    settings = _settings()

    async def main() -> None:
        async with nats_session(settings, name="lintas-cli") as (_nc, topo):
            found = await queries.list_runs(topo, repo=repo, state=state, limit=limit)
            mask = redactor_for(settings)  # as the API serves them
            print_runs(console, [r.masked(mask) for r in found], json_, wide=output == "wide")

    _run(main())


@app.command()
def show(
    run_id: str,
    json_: Annotated[bool, typer.Option("--json")] = False,
    plan: Annotated[bool, typer.Option(help="print the run's per-device plan (diffs)")] = True,
) -> None:
    """Show one run: its stages, workers, attempts, timings and errors, and its plan."""
    from lintas.engine.cli.output import print_gates, print_plan, print_run, print_twin
    from lintas.engine.contracts import RenderSummary, TwinReport, TwinSummary, results_of

    settings = _settings()

    async def main() -> None:
        async with nats_session(settings, name="lintas-cli") as (_nc, topo):
            found = await queries.get_run(topo, run_id)
            if found is None:
                err.print(f"[red]error:[/] no run {run_id}")
                raise typer.Exit(1)
            detail = redactor_for(settings).model(found)  # as the API serves it
            print_run(console, detail, json_)
            if json_:
                return
            print_gates(console, detail)
            for stage_name, twin in results_of(detail.stages, TwinSummary):  # the twin's report, by kind
                doc = await queries.get_doc_json(topo, twin.report) if twin.report else None
                print_twin(console, stage_name, twin, TwinReport.model_validate(doc) if doc is not None else None)
            if not plan:
                return
            for stage_name, render in results_of(detail.stages, RenderSummary):  # by kind, whatever its name
                name = render.plan
                doc = await queries.get_doc_json(topo, name) if name is not None else None
                if doc is not None:
                    console.print(f"\n[bold]plan[/] (stage {stage_name}, {name}):")
                    print_plan(console, doc, False)

    _run(main())


@app.command("logs")
def logs_cmd(run_id: str, follow: Annotated[bool, typer.Option("--follow", "-f")] = False) -> None:
    """Print a run's log lines; with --follow, keep printing until the run ends."""
    from lintas.engine.cli.output import format_log

    settings = _settings()

    async def main() -> None:
        async with nats_session(settings, name="lintas-cli") as (nc, topo):
            full = await queries.resolve_run_id(topo, run_id)
            async for line in queries.stream_logs(nc, topo, full, follow=follow):
                console.print(format_log(line), markup=False, highlight=False, soft_wrap=True)

    _run(main())


@app.command()
def wait(run_id: str, timeout: Annotated[float, typer.Option()] = 600.0) -> None:
    """Wait until a run is terminal; exit 0 if it succeeded, 1 otherwise."""
    settings = _settings()

    async def main() -> None:
        async with nats_session(settings, name="lintas-cli") as (_nc, topo):
            state = await queries.wait_terminal(topo, await queries.resolve_run_id(topo, run_id), timeout)
            console.print(state)
            if state != "succeeded":
                raise typer.Exit(1)

    _run(main())


def _control(action: Action) -> None:
    def cmd(
        run_id: str,
        comment: Annotated[str, typer.Option()] = "",
        actor: Annotated[str, typer.Option()] = os.environ.get("USER", "cli"),
    ) -> None:
        settings = _settings()

        async def main() -> None:
            async with nats_session(settings, name="lintas-cli") as (_nc, topo):
                await publish_control(topo.js, control(run_id, action, actor, comment))
            console.print(f"{action} requested for {run_id}")

        _run(main())

    cmd.__doc__ = f"{action.capitalize()} a run."
    app.command(action)(cmd)


for _action in get_args(Action):
    _control(_action)


def _mount_plugins() -> None:
    """Sub-commands from packages (``lintas.cli`` entry points), e.g. ``lintas lab``:
    the CLI never imports ``workers`` directly."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="lintas.cli"):
        app.add_typer(ep.load(), name=ep.name)


def main() -> None:
    """The `lintas` command. Bad input ends in one line on stderr and exit status 2, never a
    traceback; an unexpected error says so in one line (``LINTAS_TRACEBACK=1`` shows it)."""
    from pydantic import ValidationError

    try:
        _mount_plugins()
        app()
    except LintasError as exc:
        err.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
        sys.exit(2)
    except ValidationError as exc:  # settings from the environment
        err.print(f"[red]error:[/] invalid settings: {exc.errors()[0].get('loc')}: {exc.errors()[0].get('msg')}")
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("LINTAS_TRACEBACK"):
            raise
        err.print(
            f"[red]internal error:[/] {type(exc).__name__}: {str(exc)[:300]} (LINTAS_TRACEBACK=1 shows where)",
            highlight=False,
        )
        sys.exit(70)


if __name__ == "__main__":
    main()
