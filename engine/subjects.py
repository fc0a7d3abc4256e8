"""Every NATS subject, stream, consumer and bucket name Lintas uses. Nowhere else.

Tokens that come from users (repo names, stage names) are encoded with :func:`token`
so that they can never inject ``.``, ``*`` or ``>`` into a subject.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "lintas"

# Streams
EVENTS_STREAM = "LINTAS_EVENTS"  # push / trigger / control events (dedup on event id)
RESULTS_STREAM = "LINTAS_RESULTS"  # job lifecycle reports from workers
JOBS_STREAM = "LINTAS_JOBS"  # work queue, one subject per stage
LOGS_STREAM = "LINTAS_LOGS"  # per-run log lines
DLQ_STREAM = "LINTAS_DLQ"  # dead-lettered jobs, kept for inspection
NOTIFY_STREAM = "LINTAS_NOTIFY"  # run/stage transitions for API and dashboards

# Subjects
EVENTS_ALL = f"{PREFIX}.events.>"
RESULTS_ALL = f"{PREFIX}.results.>"
JOBS_ALL = f"{PREFIX}.jobs.>"
LOGS_ALL = f"{PREFIX}.runs.*.log"
DLQ_ALL = f"{PREFIX}.dlq.>"
NOTIFY_ALL = f"{PREFIX}.notify.>"

# Consumers
ENGINE_EVENTS_CONSUMER = "engine-events"
ENGINE_RESULTS_CONSUMER = "engine-results"

# Key-value buckets and object store
RUNS_BUCKET = "lintas_runs"  # run documents, updated only by compare-and-set
BRANCHES_BUCKET = "lintas_branches"  # per-branch admission queue
JOURNAL_BUCKET = "lintas_journal"  # per-job execution journal (idempotency)
LOCKS_BUCKET = "lintas_locks"  # leases: target locks, engine leadership
TARGETS_BUCKET = "lintas_targets"  # last deployed state per device / host
ARTIFACTS_STORE = "lintas_artifacts"  # rendered configs, plans, reports (by content hash)
WEBHOOK_DELIVERIES_BUCKET = "lintas_webhook_deliveries"  # webhook delivery ids (replay protection, TTL)

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def token(value: str) -> str:
    """Encode an arbitrary string as a single subject / key token.

    Safe values pass through (readable subjects); anything else becomes a stable hash.
    """
    if _SAFE.match(value):
        return value
    return "h" + hashlib.sha256(value.encode()).hexdigest()[:20]


def push_event(repo: str) -> str:
    return f"{PREFIX}.events.push.{token(repo)}"


def control_event(run_id: str) -> str:
    return f"{PREFIX}.events.control.{token(run_id)}"


def job(stage: str) -> str:
    return f"{PREFIX}.jobs.{token(stage)}"


def result(run_id: str) -> str:
    return f"{PREFIX}.results.{token(run_id)}"


def run_log(run_id: str) -> str:
    return f"{PREFIX}.runs.{token(run_id)}.log"


def dlq(stage: str) -> str:
    return f"{PREFIX}.dlq.{token(stage)}"


def notify(run_id: str) -> str:
    return f"{PREFIX}.notify.{token(run_id)}"


def worker_consumer(stage: str) -> str:
    return f"stage-{token(stage)}"


def max_deliveries_advisory(stream: str = JOBS_STREAM) -> str:
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.*"


# KV keys
def run_key(run_id: str) -> str:
    return f"run.{token(run_id)}"


def branch_key(repo: str, ref: str) -> str:
    return f"branch.{token(repo)}.{token(ref)}"


def journal_key(job_id: str) -> str:
    return f"job.{token(job_id)}"


def lock_key(target: str) -> str:
    return f"lock.{token(target)}"


def target_key(target: str) -> str:
    return f"target.{token(target)}"


def render_index_doc(repo: str, sha: str) -> str:
    return f"render/{token(repo)}/{sha}.json"


def result_doc(run_id: str, stage: str, attempt: int) -> str:
    """A stage result too large to travel inline (the inline one names this document)."""
    return f"result/{token(run_id)}/{token(stage)}-{attempt}.json"


def plan_doc(run_id: str) -> str:
    return f"plan/{token(run_id)}.json"


def policy_report_doc(run_id: str) -> str:
    return f"policy/{token(run_id)}.json"


def secscan_report_doc(run_id: str) -> str:
    return f"secscan/{token(run_id)}.sarif.json"


def deploy_record_doc(run_id: str) -> str:
    return f"deploy/{token(run_id)}.json"


def host_snapshot_doc(run_id: str, host: str) -> str:
    """A host's state before deploy changed it (what rollback restores)."""
    return f"deploy/{token(run_id)}/hosts/{token(host)}.before.json"


def verify_report_doc(run_id: str, stage: str = "verify") -> str:
    return f"verify/{token(run_id)}/{token(stage)}.json"


def twin_report_doc(run_id: str) -> str:
    """The twin stage's report: what was built, timings, checks (issue 18)."""
    return f"twin/{token(run_id)}.json"


def twin_docs_prefix(run_id: str) -> str:
    """Where the twin stage keeps its own rollout's documents (never the deploy stage's record)."""
    return f"twin/{token(run_id)}/"


DRIFT_EVENT = f"{PREFIX}.notify.drift"  # a drift report (on the NOTIFY stream)


def drift_report_doc() -> str:
    return "drift/latest.json"
