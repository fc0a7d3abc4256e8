"""``lintas twin up|down|list``: throwaway twins of a model's switches beside the lab (issue 18's
foundation; see :mod:`workers.lab.twin`). The commands of the typer sub-app :mod:`workers.twin.cli`
mounts through the ``lintas.cli`` entry points (there, because ``up --ref`` needs the twin stage's
code, which imports this package)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lintas.engine.settings import Settings
from lintas.workers.lab.cli import console, err, run_command


def up_cmd(
    repo: Annotated[Path, typer.Argument(help="infra repo (a checkout) whose switches to build")],
    name: Annotated[str | None, typer.Option(help="the twin's name (default: its prefix)")] = None,
    switch: Annotated[
        list[str] | None, typer.Option("--switch", help="build only these switches (repeat); default: all")
    ] = None,
    host: Annotated[
        list[str] | None,
        typer.Option(
            "--host", help="build these hypervisor hosts too (repeat; each with its uplink leaf); default: none"
        ),
    ] = None,
) -> None:
    """Build a twin; it stays until `lintas twin down NAME`."""
    from lintas.workers.lab.twin import twin_up

    only, hosts = frozenset(switch) if switch else None, frozenset(host) if host else None
    record = run_command(twin_up(Settings(), repo, name=name, only=only, hosts=hosts))
    print_reach(str(getattr(record, "name", "")))


def print_reach(twin: str) -> None:
    """The twin's switches and hosts and how to reach each (its namespace, its management address, one
    ssh line; a host's libvirt and OVSDB sockets)."""
    from lintas.workers.lab.twin import twin_facts

    facts = twin_facts(twin)
    console.print(
        f"[bold green]twin {escape(facts.name)} up[/]: prefix {facts.prefix}, {len(facts.devices)} switches, "
        f"management in namespace {facts.mgmt_namespace}"
    )
    for f in facts.devices.values():
        console.print(f"  {f.name:<12} {f.namespace:<20} root@{f.mgmt_ip} (through {facts.mgmt_namespace})")
    for h in facts.hosts.values():
        console.print(
            f"  {h.name:<12} {h.namespace:<20} root@{h.mgmt_ip} (through {facts.mgmt_namespace}); "
            f"virsh -c qemu+unix:///system?socket={h.libvirt_socket}; ovs-vsctl --db={h.ovsdb_socket}",
            highlight=False,
            soft_wrap=True,
        )
    any_fact = next(iter(facts.devices.values()))
    console.print(
        f"  ip netns exec {facts.mgmt_namespace} ssh -i {any_fact.key_file} -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={any_fact.known_hosts} root@{any_fact.mgmt_ip} vtysh",
        highlight=False,
        soft_wrap=True,
    )


def down_cmd(
    name: Annotated[str | None, typer.Argument(help="the twin's name (see `lintas twin list`)")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every twin on this machine, alive or dead")] = False,
    force: Annotated[bool, typer.Option("--force", help="NAME even while another process holds it")] = False,
) -> None:
    """Remove a twin (or every twin): its namespaces, processes, files and credentials."""
    from lintas.workers.lab.cmd import find_tools
    from lintas.workers.lab.twin import twin_down
    from lintas.workers.lab.twin_life import TwinDownReport, sweep_twins

    if (name is None) == (not all_):
        err.print("give a twin's NAME or --all")
        raise typer.Exit(2)
    if all_:
        result = run_command(sweep_twins(find_tools(teardown=True), everything=True))
        reports: list[TwinDownReport] = list(result) if isinstance(result, list) else []
    else:
        one = run_command(twin_down(Settings(), str(name), force=force))
        reports = [one] if isinstance(one, TwinDownReport) else []
    for r in reports:
        console.print(
            f"twin down: {r.name or '(no record)'} ({r.prefix}): removed {r.namespaces} namespaces, "
            f"{r.processes} processes"
        )
    if all_ and not reports:
        console.print("twin down: no twin on this machine")


def list_cmd(json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every twin on this machine, alive or dead (a dead one is removed by the next `twin up` or `lab down`)."""
    from lintas.workers.lab.twin_life import twin_statuses

    rows = [
        {
            "name": st.record.name if st.record else None,
            "prefix": st.prefix,
            "alive": st.alive,
            "phase": st.record.phase if st.record else None,
            "switches": st.record.switches if st.record else [],
            "hosts": st.record.hosts if st.record else [],
            "repo": st.record.repo if st.record else None,
            "home": st.record.home if st.record else None,
            "held_by": st.record.holder.pid if st.record and st.record.holder else None,
        }
        for st in twin_statuses()
    ]
    if json_:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "prefix", "phase", "alive", "switches", "held by", "repo")
    for r in rows:
        table.add_row(
            str(r["name"] or "-"),
            str(r["prefix"]),
            str(r["phase"] or "-"),
            "yes" if r["alive"] else "[red]dead[/]",
            str(len(r["switches"] or [])),  # type: ignore[arg-type]
            str(r["held_by"] or "-"),
            str(r["repo"] or "-"),
        )
    console.print(table)
