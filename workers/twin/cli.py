"""``lintas twin up|down|list`` (issue 18), mounted through the ``lintas.cli`` entry points.

``twin up <repo>`` builds switches at day 0 with nothing deployed (:mod:`workers.lab.twin_cli`);
``twin up <repo> --ref REF`` builds the twin of that commit's change, brings it to production's
state, deploys and verifies the change on it, prints the result and leaves the twin up
(:mod:`workers.twin.explore`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lintas.engine.settings import Settings
from lintas.workers.lab import twin_cli
from lintas.workers.lab.cli import console, err, run_command

twin_app = typer.Typer(
    help="Twins: isolated copies of a model's switches (FRR + sshd in their own namespaces and "
    "management network), beside the lab (needs root).",
    no_args_is_help=True,
)
twin_app.command("down")(twin_cli.down_cmd)
twin_app.command("list")(twin_cli.list_cmd)


@twin_app.command("up")
def up_cmd(
    repo: Annotated[Path, typer.Argument(help="infra repo (a checkout) whose switches to build")],
    name: Annotated[str | None, typer.Option(help="the twin's name (default: its prefix)")] = None,
    switch: Annotated[
        list[str] | None,
        typer.Option("--switch", help="build only these switches (repeat); default: all (not with --ref)"),
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host", help="build these hypervisor hosts too, each with its uplink leaf (repeat; not with --ref)"
        ),
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option(
            help="try this commit of the checkout: build its change's slice against what production has "
            "deployed, bring it to production's state, deploy the commit and verify it (exit 1 if it fails)"
        ),
    ] = None,
    whole: Annotated[bool, typer.Option("--whole", help="with --ref: build every switch, not the slice")] = False,
    repo_name: Annotated[
        str | None,
        typer.Option("--repo", help="with --ref: the registered repo whose deployed state to start from"),
    ] = None,
) -> None:
    """Build a twin; it stays until `lintas twin down NAME` (with --ref: also when the change fails)."""
    if ref is None:
        if whole or repo_name:
            err.print("--whole and --repo go with --ref")
            raise typer.Exit(2)
        twin_cli.up_cmd(repo, name, switch, host)
        return
    if switch or host:
        which = "--switch" if switch else "--host"
        err.print(f"{which} does not go with --ref: the change's slice is built (--whole: every switch)")
        raise typer.Exit(2)
    from lintas.engine.cli.output import print_twin
    from lintas.workers.twin.explore import Explored, explore

    done = run_command(explore(Settings(), repo, ref, name=name, whole=whole, repo=repo_name))
    assert isinstance(done, Explored)
    console.print(f"started from {done.source}", highlight=False, markup=False)
    print_twin(console, f"twin up --ref {ref}", done.summary, done.report)
    if done.failure is not None:
        console.print(done.failure, highlight=False, markup=False, soft_wrap=True)
    twin_cli.print_reach(done.name)
    console.print(f"twin {done.name} is left up: `lintas twin down {done.name}` removes it", markup=False)
    raise typer.Exit(0 if done.failure is None else 1)
