"""The hostile-input suite against a real `lintas up` (issue 13, item 6): one `lintas up`
process (engine, every worker and the API in one process, as the quick-start runs it) on a
nats-server, shared by the module. For each attack: the clear error, bounded time and memory
of the process that handled it, a run on another repo succeeding meanwhile, and the stack
still up. The driver is bench/hostile.py, which prints the same figures for the README.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from bench.hostile import HostileStack, Outcome, attacks, hostile_stack
from tests.security.hostile import TEMPLATE_ATTACKS, TEMPLATE_FILE

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]
MAX_S, MAX_MB = 10.0, 256.0
GROWTH_MB = 64.0  # what an attack may add to the `lintas up` process itself


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def st(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HostileStack]:
    async with hostile_stack(tmp_path_factory.mktemp("hostile")) as stack:
        async with httpx.AsyncClient(base_url=stack.api, timeout=60) as http:
            warm = await stack.push_change("healthy", {"fabric/warm.yaml": "vnis: [1]\n"})
            assert (await stack.run_doc(http, warm, 300))["state"] == "succeeded"
        stack.probing = True
        yield stack


def baseline(st: HostileStack) -> float:
    with open(f"/proc/{st.proc.pid}/status") as fh:
        return next(int(x.split()[1]) / 1024 for x in fh if x.startswith("VmRSS:"))


def served_meanwhile(out: Outcome) -> None:
    assert out.alive, "lintas up died"
    assert out.healthy == "succeeded", f"the run on another repo ended {out.healthy}"


async def test_a_million_invalid_items_fail_the_run_with_capped_diagnostics(st: HostileStack) -> None:
    before = baseline(st)
    out = await attacks()["million-invalid-items"](st)
    assert out.state == "failed" and out.error.startswith(
        "999030 problem(s) in the repo; first: fabric/devices.yaml:1:"
    )
    assert len(out.diagnostics) == 1001 and out.diagnostics[-1]["file"] == "(more)"
    served_meanwhile(out)
    assert out.stage_s is not None and out.stage_s <= MAX_S, out.stage_s
    assert out.child_peak_mb <= MAX_MB, f"validation child peaked at {out.child_peak_mb:.0f} MB"
    assert out.main_peak_mb - before <= GROWTH_MB, (before, out.main_peak_mb)


async def test_a_300MB_chunked_webhook_is_refused_without_buffering(st: HostileStack) -> None:
    before = baseline(st)
    out = await attacks()["webhook-300MB-chunked"](st)
    assert out.state == "HTTP 413" and "payload too large" in out.error
    assert out.alive and out.seconds <= MAX_S
    assert out.main_peak_mb - before <= GROWTH_MB, (before, out.main_peak_mb)


@pytest.mark.parametrize("attack", sorted(TEMPLATE_ATTACKS))
async def test_a_hostile_template_fails_render_with_a_located_error(st: HostileStack, attack: str) -> None:
    before = baseline(st)
    out = await attacks()[f"template-{attack}"](st)
    assert out.state == "failed", out
    assert out.diagnostics and all(d["file"] == TEMPLATE_FILE for d in out.diagnostics), out.diagnostics[:3]
    assert any(d["path"] or "while rendering" in d["message"] for d in out.diagnostics)  # names the target
    served_meanwhile(out)
    assert out.stage_s is not None and out.stage_s <= MAX_S, out.stage_s
    assert out.child_peak_mb <= MAX_MB and out.main_peak_mb - before <= GROWTH_MB, (
        out.child_peak_mb,
        before,
        out.main_peak_mb,
    )


async def test_the_api_kept_answering_during_the_attacks(st: HostileStack) -> None:
    lat = sorted(st.latencies)
    assert len(lat) >= 20
    assert lat[int(0.99 * (len(lat) - 1))] < 2.0  # p99 under 2 s on a 2-core machine shared with the attacks
