"""``lintas lab up|down|status``: a typer sub-app, mounted by the `lintas` CLI through the
``lintas.cli`` entry point group."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lintas.engine import aio
from lintas.engine.cli.output import make_console
from lintas.engine.errors import LintasError
from lintas.engine.settings import Settings

lab_app = typer.Typer(
    help="The lab on this machine: FRR switches and libvirt/OVS hosts in namespaces, each with sshd (needs root).",
    no_args_is_help=True,
)
console = make_console()
err = make_console(stderr=True)


def run_command(coro: object) -> object:
    """Run a lab coroutine for a command; a Lintas error is printed and exits 2."""
    try:
        return aio.run(coro)  # type: ignore[arg-type]
    except LintasError as exc:
        err.print(f"[red]error:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


@lab_app.command("up")
def up_cmd(
    repo: Annotated[
        Path | None, typer.Option(help="infra repo whose model to build (default: the built-in template)")
    ] = None,
) -> None:
    """Build the lab (idempotent: running it again repairs what is missing)."""
    from lintas.workers.lab.lab import lab_facts, lab_hosts_facts, lab_up

    settings = Settings()
    state = run_command(lab_up(settings, repo))
    facts = lab_facts(settings)
    hosts = lab_hosts_facts(settings)
    console.print(
        f"[bold green]lab up[/]: {len(facts)} switches, {len(hosts)} hosts from {getattr(state, 'repo', repo)}"
    )
    for f in facts.values():
        console.print(f"  {f.name:<12} {f.namespace:<16} ssh root@{f.mgmt_ip}")
    for h in hosts.values():
        console.print(
            f"  {h.name:<12} {h.namespace:<16} ssh root@{h.mgmt_ip}  {h.kind}, OVSDB {h.ovsdb}, "
            f"domains {h.domain_type}, virsh -c '{h.libvirt_uri}'",
            highlight=False,
            soft_wrap=True,
        )
    any_fact = next(iter(facts.values()))
    console.print(
        f"  ssh -i {any_fact.key_file} -o StrictHostKeyChecking=yes "
        f"-o UserKnownHostsFile={any_fact.known_hosts} root@{any_fact.mgmt_ip} vtysh",
        highlight=False,
        soft_wrap=True,
    )


@lab_app.command("down")
def down_cmd() -> None:
    """Remove every namespace, link, process and file of the lab, and every dead twin (live twins stay)."""
    from lintas.workers.lab.lab import lab_down

    report = run_command(lab_down(Settings()))
    console.print(
        f"lab down: removed {getattr(report, 'namespaces', 0)} namespaces, "
        f"{getattr(report, 'processes', 0)} processes, {getattr(report, 'root_links', 0)} root links, "
        f"{getattr(report, 'twins', 0)} dead twins"
    )


@lab_app.command("status")
def status_cmd(json_: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Per device: namespace, daemons (FRR; libvirt and OVS on hosts), sshd, management ping, BGP sessions;
    exit 1 if any is unhealthy."""
    from lintas.workers.lab.lab import DeviceStatus, lab_status

    result = run_command(lab_status(Settings()))
    statuses: list[DeviceStatus] = list(result) if isinstance(result, list) else []
    if json_:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        table = Table("device", "namespace", "daemons", "sshd", "ping", "BGP up", "ok")
        for s in statuses:
            down = [d for d, pid in s.daemons.items() if pid is None]
            daemons = "-" if not s.daemons else ("ok" if not down else "down: " + ",".join(down))
            bgp = "-"
            if s.bgp:
                peers = {p: st for af in s.bgp.values() for p, st in af.items()}
                bgp = f"{sum(st == 'Established' for st in peers.values())}/{len(peers)}"
            table.add_row(
                s.name,
                s.namespace if s.namespace_present else f"{s.namespace} (missing)",
                daemons,
                "up" if s.sshd else "down",
                "-" if s.mgmt_reachable is None else ("ok" if s.mgmt_reachable else "FAIL"),
                bgp,
                "[green]yes[/]" if s.healthy else "[red]no[/]",
            )
        console.print(table)
    if not all(s.healthy for s in statuses):
        raise typer.Exit(1)
