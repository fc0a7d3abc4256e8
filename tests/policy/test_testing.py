"""`lintas policy test [PATH]`: built-in and repo-local Rego unit tests as a table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lintas.workers.policy.config import PolicySettings
from lintas.workers.policy.errors import PolicySyntaxError
from lintas.workers.policy.testing import COLUMNS, run_policy_tests
from tests.policy.conftest import TEMPLATE

LOCAL = """package lintas.local

deny contains msg if {
\tsome name, inst in input.instances
\tinst.project == "prod-payments"
\tinput.hosts[inst.host].kind != "openstack"
\tmsg := sprintf("%s: production payments run on OpenStack hosts only", [name])
}
"""
LOCAL_TEST = """package lintas.local_test

import data.lintas.builtin.blast_radius
import data.lintas.local

doc := {"instances": {"p1": {"project": "prod-payments", "host": "k"}}, "hosts": {"k": {"kind": "kvm"}}}

test_kvm_host_denied if {
\tcount(local.deny) == 1 with input as doc
}

test_deliberately_wrong if {
\tcount(local.deny) == 2 with input as doc
}

test_can_use_builtins if {
\tcount(blast_radius.require_approval) == 0 with input as {"devices": {}, "change": {"known": true, "targets": []}}
}
"""


def repo_with(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(TEMPLATE, root)
    for rel, text in files.items():
        (root / rel).write_text(text)
    return root


def test_builtin_tests_without_a_repo() -> None:
    report = run_policy_tests(None, config=PolicySettings(policy_isolated=False))
    assert report.ok and report.passed == len(report.results) >= 40
    assert {row[1] for row in report.rows()} == {"built-in"}


def test_the_template_repo_tests_pass() -> None:
    assert run_policy_tests(TEMPLATE).ok


def test_repo_tests_run_with_the_builtins_and_report_failures(tmp_path: Path) -> None:
    root = repo_with(tmp_path, {"policies/payments.rego": LOCAL, "policies/payments_test.rego": LOCAL_TEST})
    report = run_policy_tests(root)  # isolated regorus, as the CLI runs it
    repo_rows = [r for r in report.rows() if r[1] == "repo" and r[2].startswith("policies/payments")]
    assert [(r[0], r[4]) for r in repo_rows] == [
        ("PASS", "lintas.local_test.test_kvm_host_denied"),
        ("FAIL", "lintas.local_test.test_deliberately_wrong"),
        ("PASS", "lintas.local_test.test_can_use_builtins"),
    ]
    assert not report.ok and report.failed == 1
    text = report.text()
    assert text.splitlines()[0].split() == [c.upper() for c in COLUMNS]
    assert "policies/payments_test.rego" in text and "1 failed" in text
    assert report.as_json()["failed"] == 1


def test_the_stage_offers_the_tests_to_the_cli(tmp_path: Path) -> None:
    from lintas.engine.settings import Settings
    from lintas.workers.policy.stage import PolicyStage

    root = repo_with(tmp_path, {"policies/payments.rego": LOCAL, "policies/payments_test.rego": LOCAL_TEST})
    out = PolicyStage(Settings(home=tmp_path / "home"), PolicySettings()).unit_tests(root)
    assert out["ok"] is False and out["failed"] == 1 and out["columns"] == list(COLUMNS)
    assert {
        "status": "FAIL",
        "origin": "repo",
        "file": "policies/payments_test.rego",
        "line": "12",
        "test": "lintas.local_test.test_deliberately_wrong",
        "error": "",
    } in out["tests"]


def test_a_syntax_error_in_a_repo_policy_names_file_and_line(tmp_path: Path) -> None:
    root = repo_with(tmp_path, {"policies/payments.rego": LOCAL.replace("if {", "if", 1)})
    with pytest.raises(PolicySyntaxError) as err:
        run_policy_tests(root)
    d = err.value.diagnostics[0]
    assert d.file == "policies/payments.rego" and d.line is not None and 3 <= d.line <= 5, d


def test_against_opa(opa_url: str, tmp_path: Path) -> None:
    root = repo_with(tmp_path, {"policies/payments.rego": LOCAL, "policies/payments_test.rego": LOCAL_TEST})
    a = run_policy_tests(root, config=PolicySettings(policy_isolated=False))
    b = run_policy_tests(root, config=PolicySettings(opa_url=opa_url))
    assert (a.backend, b.backend) == ("regorus", "opa")
    assert [r[:5] for r in a.rows()] == [r[:5] for r in b.rows()]
