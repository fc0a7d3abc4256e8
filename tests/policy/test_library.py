"""The built-in library: unit tests, fixtures, the template repo, and both backends agreeing."""

from __future__ import annotations

from typing import Any

import pytest

from lintas.workers.model import InfraModel
from lintas.workers.policy.engine import KINDS, Decision
from lintas.workers.policy.input import build_input, repo_templates
from lintas.workers.policy.library import BUILTIN_DIR, builtin_data, builtin_modules, data_document, fixtures, merge
from lintas.workers.policy.opa_backend import OpaEngine
from lintas.workers.policy.regorus_backend import RegorusEngine
from tests.policy.conftest import FIXED_META, TEMPLATE

FIXTURES = fixtures()
POLICIES = sorted(p.stem for p in BUILTIN_DIR.glob("*.rego") if not p.stem.endswith("_test"))


def fixture_data(fixture: dict[str, Any]) -> dict[str, Any]:
    return data_document(merge(builtin_data(), fixture.get("data", {})))


def own(decision: Decision, policy: str) -> dict[str, int]:
    pkg = f"lintas.builtin.{policy}"
    return {k: sum(v.policy == pkg for v in getattr(decision, k)) for k in KINDS}


def test_every_policy_has_unit_tests_and_both_fixtures() -> None:
    assert len(POLICIES) == 9
    for policy in POLICIES:
        assert (BUILTIN_DIR / f"{policy}_test.rego").exists(), policy
        assert set(FIXTURES.get(policy, {})) == {"pass", "fail"}, policy
        assert sum(FIXTURES[policy]["fail"]["expect"].values()) > 0, f"{policy}: the failing fixture expects nothing"


def test_rego_unit_tests_pass() -> None:
    results = RegorusEngine(isolated=False).run_tests(builtin_modules(), data_document(builtin_data()))
    failed = [(r.file, r.name, r.error) for r in results if not r.passed]
    assert failed == []
    per_policy = {p: sum(r.file == f"builtin/{p}_test.rego" for r in results) for p in POLICIES}
    assert all(n >= 5 for n in per_policy.values()), per_policy


@pytest.mark.parametrize("policy", POLICIES)
def test_policy_fires_on_failing_fixture_and_is_silent_on_passing(policy: str, library: dict[str, str]) -> None:
    engine = RegorusEngine(isolated=False)
    fail, ok = FIXTURES[policy]["fail"], FIXTURES[policy]["pass"]
    fired = own(engine.evaluate(library, fail["input"], fixture_data(fail)), policy)
    assert {k: fired[k] for k in fail["expect"]} == fail["expect"], fired
    quiet = own(engine.evaluate(library, ok["input"], fixture_data(ok)), policy)
    assert quiet == dict.fromkeys(KINDS, 0), quiet


def test_library_is_silent_on_the_template_repo(
    library: dict[str, str], template_input: dict[str, Any], default_data: dict[str, Any]
) -> None:
    decision = RegorusEngine().evaluate(library, template_input, default_data)  # isolated, as in the stage
    assert decision == Decision(), decision


def test_first_push_of_the_template_touches_both_spines(
    library: dict[str, str], template_model: InfraModel, default_data: dict[str, Any]
) -> None:
    everything = {
        "against": "nothing",
        "new": sorted(template_model.targets),
        "changed": [],
        "removed": [],
        "unchanged": 0,
    }
    doc = build_input(template_model, plan_summary=everything, meta=FIXED_META)
    decision = RegorusEngine(isolated=False).evaluate(library, doc, default_data)
    assert decision.deny == () and decision.warn == ()
    texts = [v.message for v in decision.require_approval]
    assert any("spine-01, spine-02" in t for t in texts) and any("4 of 4 leaves" in t for t in texts), texts


def _cases(template_model: InfraModel) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    cases = [(f"{p}/{k}", fx["input"], fixture_data(fx)) for p, kinds in FIXTURES.items() for k, fx in kinds.items()]
    for label, summary in (
        ("template/first-push", {"against": "nothing", "new": sorted(template_model.targets)}),
        ("template/unknown", None),
    ):
        doc = build_input(template_model, plan_summary=summary, meta=FIXED_META, templates=repo_templates(TEMPLATE))
        cases.append((label, doc, data_document(builtin_data())))
    return cases


def test_regorus_and_opa_agree_on_every_fixture(
    opa_url: str, library: dict[str, str], template_model: InfraModel
) -> None:
    regorus, opa = RegorusEngine(isolated=False), OpaEngine(opa_url)
    fired = 0
    for label, doc, data in _cases(template_model):
        a, b = regorus.evaluate(library, doc, data), opa.evaluate(library, doc, data)
        assert a == b, label
        assert (a.backend, b.backend) == ("regorus", "opa")
        fired += len(a.deny) + len(a.warn) + len(a.require_approval)
    assert fired > 20  # the comparison covered real decisions, not only empty ones


def test_rego_unit_tests_agree_on_both_backends(opa_url: str) -> None:
    modules, data = builtin_modules(), data_document(builtin_data())
    a = RegorusEngine(isolated=False).run_tests(modules, data)
    b = OpaEngine(opa_url).run_tests(modules, data)
    assert [(r.name, r.passed) for r in a] == [(r.name, r.passed) for r in b]
