"""Shared benchmark setup: real nats-server, real git repos, real engine."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "plugins"))  # the do-nothing stage `t-noop` lives there

from lintas.engine.events import PushEvent  # noqa: E402


def make_repo(path: Path, n_commits: int, files: dict[str, str]) -> list[str]:
    """A bare repo whose main branch has ``n_commits`` commits (built with git fast-import)."""
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(path)], check=True)
    chunks: list[str] = []
    for i in range(1, n_commits + 1):
        msg = f"commit {i}"
        chunks.append(
            f"commit refs/heads/main\nmark :{i}\ncommitter Bench <bench@example.invalid> {1700000000 + i} +0000\n"
        )
        chunks.append(f"data {len(msg)}\n{msg}\n")
        if i > 1:
            chunks.append(f"from :{i - 1}\n")
        for rel, text in {**files, "counter.yaml": f"n: {i}\n"}.items():
            data = text.encode()
            chunks.append(f"M 644 inline {rel}\ndata {len(data)}\n{text}\n")
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input="".join(chunks).encode(), check=True)
    out = subprocess.run(["git", "rev-list", "--reverse", "main"], cwd=path, capture_output=True, text=True, check=True)
    return out.stdout.split()


def push_event(repo: str, url: str, sha: str, before: str | None = None, ref: str = "refs/heads/main") -> PushEvent:
    return PushEvent(
        event_id=PushEvent.dedup_key(repo, ref, sha),
        occurred_at=datetime.now(UTC),
        repo=repo,
        url=url,
        ref=ref,
        before=before,
        sha=sha,
        author="bench",
        message="bench",
        source="hook",
    )


def noop_pipeline(n: int) -> str:
    lines = ["version: 1", "name: noop", "stages:"]
    for i in range(1, n + 1):
        lines.append(f"  s{i}:\n    uses: t-noop" + (f"\n    needs: [s{i - 1}]" if i > 1 else ""))
    return "\n".join(lines) + "\n"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * (len(s) - 1))))
    return s[k]


def summary_ms(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1000, 2),
        "p90_ms": round(pct(values, 90) * 1000, 2),
        "p99_ms": round(pct(values, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2),
    }


def report(name: str, result: dict[str, object]) -> None:
    print(json.dumps({"bench": name, **result}, indent=2))


@contextmanager
def workdir() -> Iterator[Path]:
    with TemporaryDirectory(prefix="lintas-bench-") as d:
        yield Path(d)


_INIT_DEMO = (
    "import sys; from pathlib import Path; from lintas.engine.settings import Settings; "
    "from lintas.engine.infra_repo import init_infra_repo; from lintas.engine.repos import RepoEntry, RepoRegistry; "
    "home = Settings().home; bare, work = init_infra_repo(Path(sys.argv[1]), home, template=Path(sys.argv[2])); "
    "RepoRegistry(home).add(RepoEntry(name=work.name, url=str(bare)))"
)


def init_without_twin(work: Path, env: dict[str, str]) -> None:
    """`lintas init WORK` (with ``env``: its LINTAS_HOME and NATS) from the template, but with its
    pipeline's ``twin`` stage taken out and ``deploy`` needing what the twin needed.

    For the benches and lab tests about deploy, verify and rollback on production (issue 18 put a
    twin before every deploy): their breaking changes must reach production, and their figures
    are deploy's and verify's."""
    from lintas.engine.infra_repo import TEMPLATE_DIR

    template = work.parent / (work.name + "-template-without-twin")
    shutil.copytree(TEMPLATE_DIR, template, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    pipe = template / ".lintas" / "pipeline.yaml"
    text = pipe.read_text()
    start, end = text.index("  twin:"), text.index("  deploy:")
    pipe.write_text(text[:start] + text[end:].replace("needs: [twin]", "needs: [render, policy, secscan]", 1))
    subprocess.run([sys.executable, "-c", _INIT_DEMO, str(work), str(template)], env=env, check=True, timeout=120)
