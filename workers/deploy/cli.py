"""``lintas drift``: what differs between the targets and what Lintas last deployed to them.

Mounted by the `lintas` CLI through the ``lintas.cli`` entry point group.
"""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.table import Table

from lintas.engine import aio
from lintas.engine.cli.output import make_console
from lintas.engine.errors import LintasError
from lintas.engine.settings import Settings

drift_app = typer.Typer(
    help="Drift of every deployed target (switches: config; all: branch head not applied).", invoke_without_command=True
)
console = make_console()
err = make_console(stderr=True)
STYLE = {
    "in_sync": "green",
    "drifted": "red",
    "behind": "yellow",
    "pending_orphan": "bold red",
    "unreachable": "red",
    "unknown": "dim",
}


@drift_app.callback()
def drift(
    json_: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
    remediate: Annotated[
        bool, typer.Option(help="mark drifted devices and start a normal run for the branch head (every gate applies)")
    ] = False,
    cached: Annotated[bool, typer.Option(help="show the latest stored report instead of scanning now")] = False,
) -> None:
    """Scan every target now (read-only), store and publish the report, and print it.

    Exit status: 0 when every target is in sync, 1 when something drifted or is behind, 2 on errors."""
    from lintas.engine.app import nats_session
    from lintas.engine.gitrepo import MirrorCache
    from lintas.workers.deploy.drift import DriftReport, latest, publish, scan
    from lintas.workers.deploy.drift import remediate as do_remediate

    settings = Settings()

    async def main() -> tuple[DriftReport | None, list[str]]:
        async with nats_session(settings, name="lintas-drift") as (_nc, topo):
            if cached:
                return await latest(topo), []
            mirror = MirrorCache(settings.cache_dir)
            try:
                report = await scan(settings, topo, mirror)
                await publish(topo, report)
                notes: list[str] = []
                runs = (
                    await do_remediate(
                        settings, topo, report, actor=f"drift:{getpass.getuser()}", mirror=mirror, notes=notes
                    )
                    if remediate
                    else []
                )
                for note in notes:  # stderr: stdout may be --json
                    err.print(note, markup=False, highlight=False)
            finally:
                mirror.close()
            return report, runs

    try:
        report, runs = aio.run(main())
    except LintasError as exc:
        err.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None
    if report is None:
        err.print("no drift report yet: run `lintas drift`")
        raise typer.Exit(2)
    if json_:
        print(json.dumps({**json.loads(report.model_dump_json()), "remediation_runs": runs}, indent=2))
    else:
        _print(report, runs)
    raise typer.Exit(1 if report.drifted else 0)


def _print(report: object, runs: list[str]) -> None:
    from lintas.workers.deploy.drift import DriftReport

    assert isinstance(report, DriftReport)
    t = Table(title=f"drift at {report.checked_at:%Y-%m-%d %H:%M:%S} UTC ({report.duration_s:.2f} s)")
    for col in ("target", "kind", "state", "deployed", "head", "detail"):
        t.add_column(col)
    for d in report.targets:
        detail = d.error or (f"{len(d.differences)} difference(s)" if d.differences else "")
        if d.pending_commit:
            who = f"run {d.pending_run}" if d.pending_run else "unknown origin"
            left = f", reverts in {d.pending_seconds_left} s" if d.pending_seconds_left is not None else ""
            detail += (
                f" (UNCONFIRMED commit of {who} that no live run owns{left})"
                if d.state == "pending_orphan"
                else f" (a commit of {who} is pending confirmation{left})"
            )
        t.add_row(
            d.target,
            d.kind,
            f"[{STYLE[d.state]}]{d.state}[/]",
            d.deployed_commit[:8],
            (d.head_commit or "-")[:8],
            detail,
        )
    console.print(t)
    for d in report.targets:
        if d.differences:
            console.print(f"\n[bold]{d.target}[/]: differs from what Lintas deployed at {d.deployed_commit[:8]}:")
            for line in d.differences:
                console.print(f"  {line}", markup=False, highlight=False)
    for r in runs:
        console.print(f"remediation run: {r}")
