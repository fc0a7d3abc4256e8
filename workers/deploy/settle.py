"""When has the fabric settled? The stability rule of verify and of rollback's re-verification (pure).

Verification no longer waits for ``verify_timeout`` to end a fabric that will never pass: it
decides from the control plane's own signals. Each poll gives a :class:`Reading`: per switch a
digest of its control-plane state (every BGP session's state and per-family prefix counts,
the BGP table versions, the RIB, the EVPN VNIs with their remote VTEPs, the ports' state and
MTU), how many cheap checks fail, how many modelled sessions are not Established, and the
failures that waiting cannot heal. :class:`Stability` turns the sequence into a
:class:`Verdict`:

* **deterministic**: a failure that no amount of waiting fixes (a port up at the wrong MTU, a
  session configured with an AS other than the model's, a modelled route a policy keeps from a
  peer: :mod:`workers.deploy.filters`) fails at once, with that reason;
* **stable**: every check passes and no digest changed for ``quiet_s``: converged;
* **settled**: checks fail, every modelled session is Established, and no digest changed for
  ``settle_s``: the fabric has finished converging to a state that fails for a cause none of
  the deterministic ones explains: failed, with the failing checks;
* **timeout**: ``verify_timeout`` is the upper bound for a fabric that never settles (a
  session that stays down, state that keeps changing).

The clock is the readings' own timestamps, so the rule is tested with a sequence of readings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

EndedBy = Literal["stable", "settled", "deterministic", "timeout"]


@dataclass(frozen=True, slots=True)
class Reading:
    at: float  # seconds (monotonic) when the read finished
    digests: dict[str, str]  # switch -> digest of its control-plane state
    failing: int = 0  # cheap checks failing
    sessions_down: int = 0  # modelled BGP sessions not Established (or switches unreadable)
    deterministic: list[str] = field(default_factory=list)  # failures waiting cannot heal


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    ended_by: EndedBy
    reason: str
    quiet_s: float  # how long the state had not changed when the verdict came


class Stability:
    """Feed readings in time order; :meth:`feed` answers a :class:`Verdict` or None (read again)."""

    def __init__(self, *, started: float, timeout_s: float, quiet_s: float = 1.0, settle_s: float = 3.0) -> None:
        self.started, self.deadline = started, started + timeout_s
        self.quiet_s, self.settle_s = quiet_s, settle_s
        self._last: dict[str, str] | None = None
        self._since = started  # when the state last changed
        self.readings = 0
        self.changed: list[str] = []  # the switches whose digest changed at the last change

    def quiet_for(self, now: float) -> float:
        return now - self._since if self._last is not None else 0.0

    def feed(self, r: Reading) -> Verdict | None:
        self.readings += 1
        if self._last is None or r.digests != self._last:
            changed = (
                []
                if self._last is None
                else sorted(d for d in set(r.digests) | set(self._last) if r.digests.get(d) != self._last.get(d))
            )
            self._last, self._since = dict(r.digests), r.at
            self.changed = changed
        quiet = r.at - self._since
        if r.deterministic:
            return Verdict(False, "deterministic", "; ".join(r.deterministic), quiet)
        if r.failing == 0 and quiet >= self.quiet_s:
            return Verdict(
                True,
                "stable",
                f"every check passes and the control plane has not changed for {quiet:.1f} s ({self.readings} reads)",
                quiet,
            )
        if r.failing and r.sessions_down == 0 and quiet >= self.settle_s:
            return Verdict(
                False,
                "settled",
                f"the control plane settled with {r.failing} check(s) failing: every "
                f"session is Established and nothing changed for {quiet:.1f} s",
                quiet,
            )
        if r.at >= self.deadline:
            why = (
                f"{r.sessions_down} session(s) not Established"
                if r.sessions_down
                else f"state still changing ({quiet:.1f} s quiet)"
            )
            return Verdict(
                r.failing == 0, "timeout", f"verify_timeout reached with {r.failing} check(s) failing; {why}", quiet
            )
        return None
