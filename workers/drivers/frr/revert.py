"""What runs on the switch: the apply script, the checkpoint's restore script, the revert timer.

Everything lives in the driver's directory on the device (``revert_dir``, default
``/etc/frr/lintas``, mode 0700, root only)::

    lock                    flock: apply, timer-driven restore and rollback never overlap
    caps                    probed kernel capabilities + the boot id/kernel they hold for
    applied.json            what the last commit manages (ownership), its mode and degradations
    candidate/              frr.conf (secrets resolved, 0600), apply.sh, applied.json, logs
    checkpoint/             frr.conf (running config before the commit), state.json (the Linux
                            state before, of what the commit touches), applied.json (previous
                            ownership record, if any), restore.sh, meta.json
    timer.sh                the commit-confirm timer (below)
    pending                 "<token> <deadline>" while a commit awaits confirmation
    timer.pid               the timer's pid (= its process group and session id)
    reverting / reverted    the timer took the commit back / finished ("<token> <time> <rc>")
    revert.log              what the last timer-driven restore printed

**Revert timer.** ``commit_config(revert_in=N)`` writes ``pending``, then starts
``setsid -f sh timer.sh DIR N TOKEN`` (own session: it survives the SSH session, the
engine and a cut management path) *before* applying anything. The timer sleeps N
seconds, then ``mv pending reverting``; ``confirm_commit`` does ``mv pending confirming``
and kills the timer's process group. ``rename`` is atomic, so exactly one of them
wins: either the commit is confirmed, or it is restored, never both. The restore
(``checkpoint/restore.sh``: the Linux side via iproute2 commands computed, before the
commit, from the state before; FRR via ``frr-reload.py --reload`` of the saved running
config and ``write memory``; then the previous ownership record) runs under the same
``flock`` as the apply, so a timer that fires during a slow apply waits for it to end.
Its steps are tolerant (a failing one is reported, the others still run): after a
partial apply, undoing what never happened fails harmlessly. The countdown starts
before the apply, so ``revert_in`` must cover the apply (about a second here) plus
verification. ``rollback()`` does not use this script: it recomputes the restore from
the device's current state, which is exact even after a partial apply.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable

from lintas.workers.drivers.frr.linux_apply import Op, shell_lines

DEFAULT_DIR = "/etc/frr/lintas"
FRR_RELOAD = "/usr/lib/frr/frr-reload.py"

TIMER_SH = """#!/bin/sh
# Lintas FRR driver: commit-confirm timer, started detached (setsid -f) by commit_config.
# Restores the checkpoint unless confirm_commit renames "$dir/pending" first.
dir=$1 secs=$2 token=$3
echo $$ > "$dir/timer.pid"
sleep "$secs"
mv "$dir/pending" "$dir/reverting" 2>/dev/null || exit 0
read -r t _ < "$dir/reverting"
if [ "$t" != "$token" ]; then mv "$dir/reverting" "$dir/pending"; exit 0; fi
flock "$dir/lock" sh "$dir/checkpoint/restore.sh" > "$dir/revert.log" 2>&1
rc=$?
echo "$token $(date +%s) $rc" > "$dir/reverted"
rm -f "$dir/reverting" "$dir/timer.pid"
"""


def q(value: str) -> str:
    return shlex.quote(value)


def arm_timer(d: str, seconds: int, token: str, deadline: int) -> str:
    """Write the pending marker and start the timer; returns once the timer has written its pid."""
    return f"""set -e
cd {q(d)}
rm -f reverted reverting timer.pid
printf '%s\\n' {q(f"{token} {deadline}")} > pending.tmp
mv pending.tmp pending
setsid -f sh {q(d + "/timer.sh")} {q(d)} {int(seconds)} {q(token)} < /dev/null > /dev/null 2>&1
i=0
while [ ! -s timer.pid ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done
[ -s timer.pid ] || {{ echo "the revert timer did not start" >&2; exit 1; }}
cat timer.pid
"""


def take_pending(d: str, into: str) -> str:
    """Take the pending commit away from the timer (``mv pending INTO``) and stop the timer.

    Prints ``taken`` when we won the race, else the state the timer left: ``reverting``,
    ``reverted`` or ``none``.
    """
    return f"""cd {q(d)} || exit 1
if mv pending {q(into)} 2>/dev/null; then
  pid=$(cat timer.pid 2>/dev/null)
  if [ -n "$pid" ]; then kill -TERM -- -"$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null; fi
  rm -f {q(into)} timer.pid
  echo taken
elif [ -f reverting ]; then echo reverting
elif [ -f reverted ]; then echo reverted
else echo none
fi
"""


def pending_status(d: str) -> str:
    """``pending`` (timer alive), ``stale`` (marker without a live timer), ``reverting`` or ``none``."""
    return f"""cd {q(d)} 2>/dev/null || {{ echo none; exit 0; }}
if [ -f pending ]; then
  pid=$(cat timer.pid 2>/dev/null)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo pending; else echo stale; fi
elif [ -f reverting ]; then echo reverting
else echo none
fi
"""


def _header(title: str, d: str) -> list[str]:
    return ["#!/bin/sh", f"# Lintas FRR driver: {title}", "set -u", f"dir={q(d)}"]


def apply_script(d: str, ops: Iterable[Op], *, frr_file: str | None, frr_reload: str = FRR_RELOAD, title: str) -> str:
    """Strict: stops at the first failing command (exit 3 Linux, 4 FRR); the driver then restores.

    Linux first (FRR's config refers to the devices it creates), then FRR, then the
    ownership record. Without ``frr_file`` (a merge of ``linux.json`` only) FRR is left alone.
    """
    lines = _header(f"apply {title}", d)
    lines.append("""step() { "$@" || { echo "lintas-apply: FAILED: $*" >&2; exit 3; }; }""")
    lines += shell_lines(ops, lambda cmd: f"step {cmd}")
    if frr_file is not None:
        lines += _frr_apply(frr_file, frr_reload)
    lines.append('mv "$dir/candidate/applied.json" "$dir/applied.json"')
    lines.append('rm -f "$dir/candidate/frr.conf" "$dir/candidate/frr.part" "$dir/candidate/merged.conf"')
    lines.append("echo lintas-apply: ok")
    return "\n".join(lines) + "\n"


def _frr_apply(frr_file: str, frr_reload: str) -> list[str]:
    return [
        *_reload(
            frr_reload,
            frr_file,
            '"$dir/candidate/reload.log"',
            on_fail='echo "lintas-apply: FAILED: frr-reload.py --reload; still differs: $left" >&2; exit 4',
        ),
        """vtysh -c 'write memory' > /dev/null || { echo "lintas-apply: FAILED: write memory" >&2; exit 4; }""",
    ]


def _reload(frr_reload: str, conf: str, log: str, *, on_fail: str) -> list[str]:
    """``frr-reload.py --reload``, tolerant of one FRR quirk: it exits 1 when it cannot remove a
    whole ``interface lo`` block (FRR keeps that interface) although every line inside it was
    removed. So on failure, ask ``--test`` what still differs: only bare interface contexts left
    means the config is in place; anything else runs ``on_fail`` (with ``$left`` set)."""
    r = q(frr_reload)
    return [
        f"""if ! {r} --reload {conf} > {log} 2>&1; then""",
        f"""  left=$({r} --test {conf} 2>/dev/null | grep -v -e '^Lines To ' -e '^=*$' """
        """-e '^interface [^ ]*$' -e '^exit$' -e '^ *$' | head -n 5)""",
        f"""  if [ -n "$left" ]; then grep -v ' INFO: ' {log} | tail -n 20 >&2; {on_fail}; fi""",
        "fi",
    ]


def restore_script(d: str, ops: Iterable[Op], *, checkpoint: str, frr_reload: str = FRR_RELOAD) -> str:
    """Tolerant: runs every step (one failing command must not stop a restore) and reports failures."""
    lines = _header(f"restore checkpoint {checkpoint}", d)
    lines.append("""rc=0; try() { "$@" || { echo "lintas-restore: failed (continuing): $*" >&2; rc=1; }; }""")
    lines.append(f"echo 'lintas-restore: checkpoint {checkpoint}'")
    lines += shell_lines(ops, lambda cmd: f"try {cmd}")
    lines += _reload(
        frr_reload,
        '"$dir/checkpoint/frr.conf"',
        '"$dir/checkpoint/reload.log"',
        on_fail='echo "lintas-restore: failed (continuing): frr-reload.py --reload; still differs: $left" >&2; rc=1',
    )
    lines.append("""try vtysh -c 'write memory' > /dev/null""")
    lines.append(
        """if [ -f "$dir/checkpoint/applied.json" ]; then try cp "$dir/checkpoint/applied.json" """
        """"$dir/applied.json"; else rm -f "$dir/applied.json"; fi"""
    )
    lines.append("echo lintas-restore: done rc=$rc")
    lines.append("exit $rc")
    return "\n".join(lines) + "\n"


def run_detached(script: str, log: str, d: str) -> str:
    """Run ``script`` under the lock in its own session, so it completes even if SSH drops; print its log."""
    return f"setsid -w flock {q(d + '/lock')} sh {q(script)} > {q(log)} 2>&1 < /dev/null; rc=$?; cat {q(log)}; exit $rc"


def checkpoint_commands(d: str, checkpoint_id: str) -> str:
    """Snapshot FRR's running config and the ownership record into ``checkpoint.new``, then swap it in.

    ``state.json``, ``restore.sh`` and ``meta.json`` were uploaded into ``checkpoint.new`` first.
    """
    return f"""set -e
cd {q(d)}
test -f checkpoint.new/state.json
vtysh -c 'show running-config' | sed -e '/^Building configuration/d' -e '/^Current configuration:/d' \
  > checkpoint.new/frr.conf
grep -q '^frr version\\|^hostname\\|^!' checkpoint.new/frr.conf
if [ -f applied.json ]; then cp applied.json checkpoint.new/applied.json; fi
rm -rf checkpoint.old
if [ -d checkpoint ]; then mv checkpoint checkpoint.old; fi
mv checkpoint.new checkpoint
rm -rf checkpoint.old
echo {q(checkpoint_id)}
"""
