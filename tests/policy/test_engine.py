"""Both backends fail closed, and report syntax errors with file and line."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest

from lintas.workers.policy.engine import Decision, PolicyEngine, Violation, decision_module
from lintas.workers.policy.errors import (
    PolicyError,
    PolicyEvaluationError,
    PolicySyntaxError,
    PolicyTimeoutError,
    PolicyUnavailableError,
)
from lintas.workers.policy.opa_backend import OpaEngine
from lintas.workers.policy.regorus_backend import RegorusEngine
from tests.policy.opa_standin import opa_standin

GOOD = """package lintas.local

deny contains msg if {
\tsome name, d in input.devices
\td.role == "spine"
\tmsg := sprintf("%s: no spines today", [name])
}
"""
BROKEN = 'package lintas.local\n\ndeny contains msg if {\n\tmsg := sprintf("%s", [input.x]\n}\n'
TYPE_ERROR = 'package lintas.local\n\ndeny contains msg if {\n\tcount(input.nothing_here) > 0\n\tmsg := "x"\n}\n'
RUNAWAY = (
    "package lintas.local\n\nn := count([1 | some i in numbers.range(1, 20000); "
    'some j in numbers.range(1, 20000); i > j])\n\ndeny contains "slow" if n > 0\n'
)
DOC = {"devices": {"spine-01": {"role": "spine"}, "leaf-01": {"role": "leaf"}}, "nothing_here": None}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def engines(opa_url: str) -> list[PolicyEngine]:
    return [RegorusEngine(), RegorusEngine(isolated=False), OpaEngine(opa_url)]


def test_decision_from_every_engine(opa_url: str) -> None:
    for engine in engines(opa_url):
        d = engine.evaluate({"policies/spines.rego": GOOD}, DOC, {})
        assert d == Decision(deny=(Violation("lintas.local", "spine-01: no spines today"),)), engine.name


def test_unreachable_opa_fails_closed() -> None:
    engine = OpaEngine(f"http://127.0.0.1:{closed_port()}", timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(PolicyUnavailableError, match="unreachable"):
        engine.evaluate({"policies/spines.rego": GOOD}, DOC, {})
    assert time.monotonic() - t0 < 5


def test_opa_that_never_answers_times_out() -> None:
    with socket.socket() as server:  # accepts connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        engine = OpaEngine(f"http://127.0.0.1:{server.getsockname()[1]}", timeout_s=0.5)
        with pytest.raises(PolicyTimeoutError):
            engine.evaluate({"policies/spines.rego": GOOD}, DOC, {})


def test_syntax_error_names_file_and_line(opa_url: str) -> None:
    for engine in engines(opa_url):
        with pytest.raises(PolicySyntaxError) as err:
            engine.evaluate({"policies/spines.rego": GOOD, "policies/broken.rego": BROKEN}, DOC, {})
        d = err.value.diagnostics[0]
        assert d.file == "policies/broken.rego" and d.line in (4, 5), (engine.name, d)  # the open call, or its end
        assert d.message and "Stack backtrace" not in d.message, d.message


def test_evaluation_error_fails_closed(opa_url: str) -> None:
    for engine in engines(opa_url):
        with pytest.raises(PolicyEvaluationError, match="count"):
            engine.evaluate({"policies/t.rego": TYPE_ERROR}, DOC, {})


def test_regorus_runaway_policy_is_killed_at_the_timeout() -> None:
    t0 = time.monotonic()
    with pytest.raises(PolicyTimeoutError, match="killed"):
        RegorusEngine(timeout_s=1.0).evaluate({"policies/slow.rego": RUNAWAY}, {}, {})
    assert time.monotonic() - t0 < 4


def test_regorus_child_does_not_block_other_threads() -> None:
    """The reason evaluation runs in a child: regorus holds the GIL while it evaluates."""
    ticks = []
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=tick)
    t.start()
    try:
        with pytest.raises(PolicyTimeoutError):
            RegorusEngine(timeout_s=1.0).evaluate({"policies/slow.rego": RUNAWAY}, {}, {})
    finally:
        stop.set()
        t.join()
    assert max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) < 0.5


@pytest.mark.parametrize(
    "source, expect",
    [
        ("package lintas.local\n\ndeny := true\n", "rule deny is not a set"),
        ('package lintas.local\n\ndeny contains {"message": "no msg key"} if true\n', "without a string 'msg'"),
    ],
)
def test_malformed_rules_become_denials(opa_url: str, source: str, expect: str) -> None:
    for engine in engines(opa_url):
        d = engine.evaluate({"policies/odd.rego": source}, {}, {})
        assert len(d.deny) == 1 and expect in d.deny[0].message, (engine.name, d)


def test_opa_evaluations_are_isolated_and_cleaned_up() -> None:
    other = GOOD.replace("no spines today", "OTHER REPO").replace('"spine"', '"leaf"')
    results: dict[str, Any] = {}
    with opa_standin() as (url, state):

        def run(key: str, source: str) -> None:
            results[key] = [OpaEngine(url).evaluate({"policies/p.rego": source}, DOC, {}) for _ in range(5)]

        threads = [threading.Thread(target=run, args=(k, s)) for k, s in (("a", GOOD), ("b", other))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert state.policies == {} and state.data == {}
    assert all(d.deny == (Violation("lintas.local", "spine-01: no spines today"),) for d in results["a"])
    assert all(d.deny == (Violation("lintas.local", "leaf-01: OTHER REPO"),) for d in results["b"])


def test_opa_rejects_upload_with_http_error_as_evaluation_error() -> None:
    with opa_standin() as (url, _), pytest.raises(PolicyError):
        OpaEngine(url.replace("http://", "https://")).evaluate({"policies/p.rego": GOOD}, DOC, {})


def test_decision_module_covers_each_package() -> None:
    src = decision_module(["a.b", "c"])
    assert "data.a.b.deny" in src and "data.c.require_approval" in src and "data.c.warn" in src
