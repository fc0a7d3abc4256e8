"""napalm driver ``frr``: Linux + FRR switches over SSH, with a device-side commit-confirm timer.

    driver = FrrDriver("10.255.0.21", "root", "", optional_args={
        "key_file": "/path/id_ed25519", "known_hosts": "/path/known_hosts",
        "secret_lookup": "env",            # or a callable ref -> value
    })
    driver.open()
    driver.load_replace_candidate(config={"frr.conf": ..., "linux.json": ...})
    print(driver.compare_config())         # "" when nothing would change
    driver.commit_config(revert_in=120)    # the device restores itself unless ...
    driver.confirm_commit()                # ... this arrives in time

optional_args: ``port`` (22), ``key_file`` (else ``password`` is used), ``known_hosts``
(default ``~/.ssh/known_hosts``; RejectPolicy, never auto-add; ``strict_host_key_checking``
may only be true), ``secret_lookup``, ``revert_dir`` (``/etc/frr/lintas``), ``frr_reload``
(path of frr-reload.py), ``sock_factory`` (a callable returning a connected socket to use
instead of connecting to ``hostname``:``port``, e.g. one made inside a network namespace; the
host key is still checked for ``hostname``). Unknown options (nornir passes ``ssh_config_file``) are ignored.

The candidate format is described in :mod:`workers.drivers.frr.candidate`, the Linux
planning and kernel modes in :mod:`workers.drivers.frr.linux_model` and
:mod:`workers.drivers.frr.linux_apply`, the on-device files and the timer in
:mod:`workers.drivers.frr.revert`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shlex
import time
from dataclasses import dataclass
from typing import Any

from napalm.base import NetworkDriver

from lintas.workers.drivers.frr import revert
from lintas.workers.drivers.frr.candidate import (
    Candidate,
    load_candidate,
    mask_secrets,
    read_bundle,
    secret_lookup_from,
)
from lintas.workers.drivers.frr.errors import (
    FrrCandidateError,
    FrrCommandError,
    FrrCommitConfirmError,
    FrrCommitError,
    FrrConnectionError,
    FrrMergeError,
)
from lintas.workers.drivers.frr.frr_diff import parse_reload_test, reload_failed_reason
from lintas.workers.drivers.frr.linux_apply import Plan, plan_linux, plan_restore
from lintas.workers.drivers.frr.linux_model import Desired, desired_state
from lintas.workers.drivers.frr.reads import ReadsMixin, parse_pending, pending_parts
from lintas.workers.drivers.frr.remote import (
    Gathered,
    gather_script,
    mark,
    merged_frr_command,
    parse_sections,
    setup_script,
    tar_bytes,
    untar_command,
)
from lintas.workers.drivers.frr.ssh import Result, SshSession
from lintas.workers.drivers.frr.state import Capabilities, Link, NetState

log = logging.getLogger("lintas.drivers.frr")
_SAFE_DIR = re.compile(r"/[A-Za-z0-9._/-]+")
DEFAULT_SYSCTLS = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"]
PREPARED_TTL_S = 10.0  # a commit right after compare_config reuses its state read and FRR diff


@dataclass(slots=True)
class _Prepared:
    gathered: Gathered
    desired: Desired | None
    plan: Plan
    frr_file: str | None  # on the device
    frr_lines: list[str]


class FrrDriver(ReadsMixin, NetworkDriver):  # type: ignore[misc]
    """napalm ``NetworkDriver`` for Linux + FRR switches (see the module docstring)."""

    platform = "frr"
    CAPABILITIES = frozenset({"replace", "merge", "compare", "commit_confirm", "device_side_revert", "rollback"})

    def __init__(
        self,
        hostname: str,
        username: str,
        password: str,
        timeout: int = 60,
        optional_args: dict[str, Any] | None = None,
    ) -> None:
        opts = dict(optional_args or {})
        self.hostname, self.username, self.password, self.timeout = hostname, username, password, timeout
        self.port = int(opts.get("port") or 22)
        self.key_file = str(opts["key_file"]) if opts.get("key_file") else None
        self.known_hosts = str(opts.get("known_hosts") or os.path.expanduser("~/.ssh/known_hosts"))
        if opts.get("strict_host_key_checking", True) is not True:
            raise FrrCandidateError("the frr driver always checks host keys (strict_host_key_checking must be true)")
        self.revert_dir = str(opts.get("revert_dir") or revert.DEFAULT_DIR).rstrip("/")
        if not _SAFE_DIR.fullmatch(self.revert_dir) or ".." in self.revert_dir.split("/"):
            raise FrrCandidateError(f"revert_dir must be an absolute path of safe characters: {self.revert_dir!r}")
        self.frr_reload = str(opts.get("frr_reload") or revert.FRR_RELOAD)
        self._lookup = secret_lookup_from(opts.get("secret_lookup", "env"))
        self.sock_factory = opts.get("sock_factory")
        if self.sock_factory is not None and not callable(self.sock_factory):
            raise FrrCandidateError("sock_factory must be a callable returning a connected socket")
        self._ssh: SshSession | None = None
        self._candidate: Candidate | None = None
        self._caps: Capabilities | None = None
        # compare_config's preparation, reused by an immediately following commit_config
        self._prepared: tuple[Candidate, _Prepared, float] | None = None

    # -- connection -----------------------------------------------------------------------

    def open(self) -> None:
        ssh = SshSession(
            self.hostname,
            self.port,
            self.username,
            key_file=self.key_file,
            known_hosts=self.known_hosts,
            password=self.password or None,
            timeout=float(self.timeout),
            sock_factory=self.sock_factory,
        )
        ssh.open()
        self._ssh = ssh

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None

    def is_alive(self) -> dict[str, bool]:
        return {"is_alive": bool(self._ssh and self._ssh.alive)}

    def _run(self, command: str, **kw: Any) -> Result:
        if self._ssh is None:
            raise FrrConnectionError(f"{self.hostname}: not open (call open() first)")
        return self._ssh.run(command, **kw)

    def _setup(self) -> Capabilities:
        if self._caps is None:
            res = self._run(setup_script(self.revert_dir, revert.TIMER_SH), check=True, what="setup")
            lines = res.stdout.splitlines() + ["", ""]
            self._caps = Capabilities.from_words(lines[0], lines[1].split(" ", 1)[-1] if lines[1] else "")
        return self._caps

    # -- candidate ------------------------------------------------------------------------

    def load_replace_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self._candidate = load_candidate(read_bundle(filename, config), self._lookup, merge=False)
        self._prepared = None

    def load_merge_candidate(self, filename: str | None = None, config: str | None = None) -> None:
        self._candidate = load_candidate(read_bundle(filename, config), self._lookup, merge=True)
        self._prepared = None

    def discard_config(self) -> None:
        self._candidate = None
        self._prepared = None
        if self._ssh is not None and self._ssh.alive:
            self._run(f"rm -f {shlex.quote(self.revert_dir)}/candidate/*", what="discard candidate")

    def _prepare(self, cand: Candidate) -> _Prepared:
        """One exec: upload the candidate, read the state, run frr-reload --test; then plan the Linux side."""
        caps = self._setup()
        d = self.revert_dir
        steps: list[str] = [f"rm -f {shlex.quote(d)}/candidate/*"]
        stdin = None
        frr_file = None
        if cand.frr_conf is not None:
            stdin = tar_bytes({"frr.part" if cand.merge else "frr.conf": cand.frr_conf})
            steps.append(untar_command(d, "candidate"))
            if cand.merge:
                steps.append(merged_frr_command(d))
            frr_file = f"{d}/candidate/{'merged.conf' if cand.merge else 'frr.conf'}"
        keys = sorted(set(DEFAULT_SYSCTLS) | (set(cand.spec.sysctls) if cand.spec else set()))
        script = (
            "\n".join(steps) + "\n" + gather_script(d, keys, frr_test=(self.frr_reload, frr_file) if frr_file else None)
        )
        res = self._run(script, stdin=stdin, what="upload candidate, gather state, frr-reload --test")
        if res.returncode != 0:
            raise FrrCommandError(f"{self.hostname}: preparing the candidate failed: {cand.mask(res.stderr)[-500:]}")
        gathered = Gathered(res.stdout)
        gathered.caps = caps
        frr_lines: list[str] = []
        if frr_file is not None:
            if gathered.frr_rc != 0:
                error = FrrMergeError if cand.merge else FrrCandidateError
                raise error(
                    f"{self.hostname}: FRR refused the candidate: {cand.mask(reload_failed_reason(gathered.frr_err))}"
                )
            frr_lines = [cand.mask(line) for line in parse_reload_test(gathered.frr_test or "")]
        desired = desired_state(cand.spec, caps) if cand.spec is not None else None
        if desired is None:
            plan = Plan([], [], NetState(dict(gathered.state.links), dict(gathered.state.sysctls)))
        else:
            plan = plan_linux(gathered.state, desired, _previous_links(gathered.applied), merge=cand.merge)
            have = gathered.mgmt_addresses(desired.mgmt_interface)
            if desired.mgmt_address not in have:
                plan.errors.append(
                    f"this candidate is for the switch whose {desired.mgmt_interface} is {desired.mgmt_address} "
                    f"({cand.spec.hostname if cand.spec else '?'}), but this device's {desired.mgmt_interface} has "
                    f"{', '.join(have) or 'no address'}: refused"
                )
        return _Prepared(gathered, desired, plan, frr_file, frr_lines)

    def compare_config(self) -> str:
        cand = self._candidate
        if cand is None:
            return ""
        prep = self._prepare(cand)
        self._prepared = (cand, prep, time.monotonic())
        return _format_diff(prep, cand)

    # -- commit, confirm, rollback --------------------------------------------------------

    def commit_config(self, message: str = "", revert_in: int | None = None) -> None:
        cand = self._candidate
        if cand is None:
            raise FrrCommitError(f"{self.hostname}: no candidate loaded")
        if revert_in is not None and int(revert_in) < 1:
            raise FrrCommitError("revert_in must be at least 1 second")
        started = time.monotonic()
        reuse = self._prepared
        self._prepared = None
        if reuse is not None and reuse[0] is cand and started - reuse[2] < PREPARED_TTL_S:
            prep = reuse[1]  # compare_config just read the state and ran frr-reload --test: not twice
        else:
            prep = self._prepare(cand)
        if prep.gathered.pending != "none":
            raise FrrCommitError(
                f"{self.hostname}: a commit is {prep.gathered.pending} on the device; "
                "confirm_commit() or rollback() it first"
            )
        if prep.plan.errors:
            raise FrrCommitError(f"{self.hostname}: refused: " + "; ".join(prep.plan.errors))
        ckpt = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"
        d = self.revert_dir
        files = {
            **self._checkpoint_files(ckpt, prep, message, revert_in),
            **self._apply_files(ckpt, prep, cand, message),
        }
        script = f"rm -rf {shlex.quote(d)}/checkpoint.new\n{untar_command(d)}\n{revert.checkpoint_commands(d, ckpt)}"
        if revert_in is not None:
            script += revert.arm_timer(d, int(revert_in), ckpt, int(time.time()) + int(revert_in))
        res = self._run(script, stdin=tar_bytes(files), what="checkpoint" + (", arm timer" if revert_in else ""))
        if res.returncode != 0:
            raise FrrCommitError(
                f"{self.hostname}: could not take the checkpoint; nothing changed: {cand.mask(res.stderr)[-500:]}"
            )
        try:
            res = self._run(
                revert.run_detached(f"{d}/candidate/apply.sh", f"{d}/candidate/apply.log", d),
                timeout=max(float(self.timeout), 120.0),
                what="apply",
            )
        except (FrrConnectionError, FrrCommandError) as exc:
            what = (
                f"the device restores checkpoint {ckpt} by itself in {revert_in} s unless confirmed"
                if revert_in is not None
                else f"its state is unknown: rollback() restores checkpoint {ckpt}"
            )
            raise FrrCommitError(f"{self.hostname}: lost the device during the commit ({exc}); {what}") from None
        if res.returncode != 0:
            detail = cand.mask((res.stdout + res.stderr).strip()[-1500:])
            try:
                self.rollback()
                outcome = f"restored to checkpoint {ckpt}"
            except Exception as exc:  # report both: the commit failure matters most
                outcome = f"AND the restore failed: {cand.mask(str(exc))}"
            raise FrrCommitError(f"{self.hostname}: commit failed, {outcome}:\n{detail}")
        self._candidate = None
        log.info(
            "%s: committed checkpoint %s (%d Linux changes, %d FRR changes) in %.1f s%s",
            self.hostname,
            ckpt,
            len(prep.plan.ops),
            len(prep.frr_lines),
            time.monotonic() - started,
            f", revert in {revert_in} s unless confirmed" if revert_in is not None else "",
        )

    def _checkpoint_files(self, ckpt: str, prep: _Prepared, message: str, revert_in: int | None) -> dict[str, str]:
        """``checkpoint.new/``: the state before (of what the commit touches), the restore script, metadata."""
        before = prep.gathered.state.subset(prep.plan.touched, prep.plan.touched_sysctls)
        restore = plan_restore(prep.gathered.state, prep.plan.after, prep.plan.touched, prep.plan.touched_sysctls)
        state = {
            "id": ckpt,
            "before": before.to_json(),
            "touched": sorted(prep.plan.touched),
            "touched_sysctls": sorted(prep.plan.touched_sysctls),
        }
        meta = {
            "id": ckpt,
            "message": message,
            "revert_in": revert_in,
            "created_at": int(time.time()),
            "mode": prep.gathered.caps.mode,
        }
        script = revert.restore_script(self.revert_dir, restore.ops, checkpoint=ckpt, frr_reload=self.frr_reload)
        return {
            "checkpoint.new/state.json": json.dumps(state, indent=1) + "\n",
            "checkpoint.new/meta.json": json.dumps(meta, indent=1) + "\n",
            "checkpoint.new/restore.sh": script,
        }

    def _apply_files(self, ckpt: str, prep: _Prepared, cand: Candidate, message: str) -> dict[str, str]:
        """``candidate/apply.sh`` and the ownership record it installs when everything applied."""
        previous = (prep.gathered.applied or {}).get("links", {})
        if prep.desired is None:
            applied = prep.gathered.applied or {"links": {}}
        else:
            links = {n: link.to_json() for n, link in prep.desired.links.items()}
            vni_vlans = {str(vx.vni): vx.vlan for vx in cand.spec.vxlans} if cand.spec else {}
            if cand.merge:
                links = {**previous, **links}
                vni_vlans = {**(prep.gathered.applied or {}).get("vni_vlans", {}), **vni_vlans}
            applied = {
                "schema": 1,
                "mode": prep.desired.mode,
                "caps": prep.gathered.caps.to_json(),
                "links": links,
                "sysctls": prep.desired.sysctls,
                "vni_vlans": vni_vlans,
                "unsupported": prep.desired.unsupported,
                "adaptations": prep.desired.adaptations,
            }
        applied = {
            **applied,
            "checkpoint": ckpt,
            "message": message,
            "committed_at": int(time.time()),
            "candidate": cand.digest,
        }
        script = revert.apply_script(
            self.revert_dir,
            prep.plan.ops,
            frr_file=prep.frr_file,
            frr_reload=self.frr_reload,
            title=f"candidate {cand.digest} ({ckpt})",
        )
        return {
            "candidate/apply.sh": script,
            "candidate/applied.json": json.dumps(applied, indent=1, sort_keys=True) + "\n",
        }

    def _pending_status(self) -> str:
        self._setup()
        return self._run(revert.pending_status(self.revert_dir), what="pending status").stdout.strip() or "none"

    def has_pending_commit(self) -> bool:
        return self._pending_status() != "none"

    def get_pending_commit(self) -> dict[str, Any] | None:
        """The commit awaiting confirmation on the device, and who made it; None when there is none.

        ``{"status": "pending" | "stale" | "reverting", "checkpoint", "message", "created_at",
        "revert_in", "deadline", "seconds_left"}``: ``message`` is the one given to
        ``commit_config`` (Lintas puts the run id in it), kept in the checkpoint's metadata on
        the device; ``seconds_left`` is counted by the device's own clock (``stale``: no live
        timer). One exec."""
        self._setup()
        res = self._run(
            "\n".join(f"{mark(n)}\n{c}" for n, c in pending_parts(self.revert_dir)) + "\n", what="pending commit"
        )
        return parse_pending(parse_sections(res.stdout))

    def confirm_commit(self) -> None:
        self._setup()
        took = self._run(revert.take_pending(self.revert_dir, "confirming"), what="confirm").stdout.strip()
        if took == "taken":
            log.info("%s: commit confirmed", self.hostname)
            return
        if took in ("reverting", "reverted"):
            raise FrrCommitConfirmError(
                f"{self.hostname}: too late, the device-side timer already restored the checkpoint ({took})"
            )
        raise FrrCommitConfirmError(f"{self.hostname}: no commit is pending confirmation")

    def rollback(self) -> None:
        """Restore the last checkpoint now (cancelling a pending timer), computed from the current state."""
        self._setup()
        d = self.revert_dir
        first = self._run(
            f"({revert.take_pending(d, 'rolling-back').strip()})\n{mark('ckpt')}\n"
            f"cat {shlex.quote(d)}/checkpoint/state.json 2>/dev/null\n" + gather_script(d, list(DEFAULT_SYSCTLS)),
            what="stop timer, read checkpoint and state",
        )
        sections = parse_sections(first.stdout)
        if not sections.get("ckpt", "").strip():
            raise FrrCommitError(f"{self.hostname}: no checkpoint to roll back to")
        ckpt = json.loads(sections["ckpt"])
        before = NetState.from_json(ckpt["before"])
        now = Gathered(first.stdout)
        if set(ckpt.get("touched_sysctls", [])) - set(now.state.sysctls):
            keys = sorted(set(DEFAULT_SYSCTLS) | set(ckpt["touched_sysctls"]))
            now = Gathered(self._run(gather_script(d, keys), check=True, what="gather state").stdout)
        plan = plan_restore(before, now.state, set(ckpt["touched"]), set(ckpt.get("touched_sysctls", [])))
        script = revert.restore_script(d, plan.ops, checkpoint=ckpt["id"], frr_reload=self.frr_reload)
        res = self._run(
            untar_command(d, "checkpoint")
            + "\n"
            + revert.run_detached(f"{d}/checkpoint/rollback.sh", f"{d}/checkpoint/rollback.log", d),
            stdin=tar_bytes({"rollback.sh": script}),
            timeout=max(float(self.timeout), 120.0),
            what="rollback",
        )
        if res.returncode != 0:
            mask = self._candidate.mask if self._candidate else mask_secrets
            raise FrrCommitError(
                f"{self.hostname}: rollback to {ckpt['id']} incomplete:\n{mask(res.stdout + res.stderr)[-1500:]}"
            )
        log.info("%s: rolled back to checkpoint %s (%d Linux changes)", self.hostname, ckpt["id"], len(plan.ops))

    # -- facts about the kernel mode (not in napalm's base) ---------------------------------

    def get_kernel_facts(self) -> dict[str, Any]:
        """Kernel mode and capabilities, and what the last commit could not build here.

        ``{"mode", "capabilities", "applied": {"unsupported_on_this_kernel", "adaptations", ...} | None,
        "candidate": {...} | None}`` (``candidate`` = what the loaded candidate would lose).
        """
        caps = self._setup()
        raw = self._run(f"cat {shlex.quote(self.revert_dir)}/applied.json 2>/dev/null", what="read applied").stdout
        applied = json.loads(raw) if raw.strip() else None
        out: dict[str, Any] = {"mode": caps.mode, "capabilities": caps.to_json(), "applied": None, "candidate": None}
        if isinstance(applied, dict):
            out["applied"] = {
                "mode": applied.get("mode"),
                "unsupported_on_this_kernel": applied.get("unsupported", []),
                "adaptations": applied.get("adaptations", []),
                "checkpoint": applied.get("checkpoint"),
                "message": applied.get("message"),
                "committed_at": applied.get("committed_at"),
            }
        if self._candidate is not None and self._candidate.spec is not None:
            d = desired_state(self._candidate.spec, caps)
            out["candidate"] = {
                "mode": d.mode,
                "unsupported_on_this_kernel": d.unsupported,
                "adaptations": d.adaptations,
            }
        return out


def _previous_links(applied: dict[str, Any] | None) -> dict[str, Link]:
    if not applied:
        return {}
    return {n: Link.from_json(x) for n, x in applied.get("links", {}).items()}


def _format_diff(prep: _Prepared, cand: Candidate) -> str:
    """The compare_config text: empty when nothing would change."""
    linux = prep.plan.lines
    if not (prep.frr_lines or linux or prep.plan.errors):
        return ""
    out: list[str] = []
    if prep.frr_lines:
        out += ["[frr] frr-reload.py --test", *prep.frr_lines]
    mode = prep.desired.mode if prep.desired else prep.gathered.caps.mode
    if linux or prep.plan.errors:
        out.append(f"[linux] kernel mode {mode}")
        out += linux
        out += [f"! error: {e}" for e in prep.plan.errors]
    if prep.desired is not None and prep.desired.unsupported:
        out.append("[unsupported_on_this_kernel]")
        out += [f"! {u}" for u in prep.desired.unsupported]
    if prep.desired is not None and prep.desired.adaptations:
        out.append("[adaptations]")
        out += [f"~ {a}" for a in prep.desired.adaptations]
    return cand.mask("\n".join(out) + "\n")
