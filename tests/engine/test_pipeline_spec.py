from __future__ import annotations

import textwrap

import pydantic
import pytest

from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import PipelineError
from lintas.engine.pipeline import (
    DEFAULT_PIPELINE,
    PipelineSpec,
    StageSpec,
    When,
    applies,
    deploys_without_twin,
    load_default_pipeline,
    load_pipeline,
    parse_duration,
    topo_order,
)

FULL = """\
version: 1
name: default
stages:
  validate: {}
  render:
    needs: [validate]
    when: {branches: ["main", "release/*"], paths: ["fabric/**", "hosts/**"]}
    timeout: 10m
    retries: 2
    backoff: 5s
  deploy:
    needs: [render]
    approval: required
    with: {strategy: waves, batch: 2}
  verify:
    needs: [deploy]
  rollback:
    uses: rollback
    on_failure: [deploy, verify]
"""


def _errors(text: str, **kwargs: object) -> list[Diagnostic]:
    with pytest.raises(PipelineError) as exc:
        load_pipeline(textwrap.dedent(text), file="pipe.yaml", **kwargs)  # type: ignore[arg-type]
    assert all(d.file == "pipe.yaml" for d in exc.value.diagnostics)
    return exc.value.diagnostics


def _one(text: str, **kwargs: object) -> Diagnostic:
    [diag] = _errors(text, **kwargs)
    return diag


def test_default_pipeline_loads() -> None:
    spec = load_default_pipeline()
    assert spec.version == 1 and spec.name == "default"
    assert list(spec.stages) == ["validate", "render", "policy", "secscan", "twin", "deploy", "verify", "rollback"]
    assert spec.stages["rollback"].on_failure == ["deploy", "verify"]
    assert spec.stages["deploy"].approval == "on_request"
    assert spec.stages["validate"].timeout_s == 300
    assert spec.stages["render"].needs == ["validate"]


def test_default_pipeline_has_only_stages_that_exist() -> None:
    from lintas.engine import registry

    kinds = registry.stage_kinds()
    spec = load_default_pipeline()
    assert [s.kind for s in spec.stages.values() if s.kind not in kinds] == []
    load_pipeline(
        DEFAULT_PIPELINE.read_bytes(),
        file="default.yaml",
        known_kinds=kinds,
        confirmed_by=registry.confirmations(kinds),
    )


def test_registry_knows_that_deploy_is_confirmed_by_verify() -> None:
    from lintas.engine import registry

    assert registry.confirmations(registry.stage_kinds()) == {"deploy": "verify"}


@pytest.mark.parametrize(
    "verify",
    [
        "",  # no verify at all
        "  verify: {needs: [render]}\n",  # beside deploy, not after it
        "  verify: {on_failure: [deploy]}\n",  # only as a failure handler
    ],
)
def test_a_deploy_that_nothing_confirms_is_refused_with_its_line(verify: str) -> None:
    text = (
        "version: 1\nname: p\nstages:\n  validate: {}\n  render: {needs: [validate]}\n"
        "  push: {uses: deploy, needs: [render]}\n" + verify
    )
    [diag] = [d for d in _errors(text, confirmed_by={"deploy": "verify"}) if d.path == "stages.push"]
    assert diag.line == 6
    assert "stage 'push' (deploy) leaves its changes pending until a 'verify' stage confirms them" in diag.message


def test_a_deploy_confirmed_directly_or_through_another_stage_loads() -> None:
    base = "version: 1\nname: p\nstages:\n  deploy: {}\n"
    load_pipeline(base + "  check: {uses: verify, needs: [deploy]}\n", file="p.yaml", confirmed_by={"deploy": "verify"})
    load_pipeline(
        base + "  soak: {needs: [deploy]}\n  verify: {needs: [soak]}\n",
        file="p.yaml",
        confirmed_by={"deploy": "verify"},
    )


def test_full_example() -> None:
    spec = load_pipeline(FULL, file="pipe.yaml", known_kinds={"validate", "render", "deploy", "verify", "rollback"})
    render, deploy, rollback = spec.stages["render"], spec.stages["deploy"], spec.stages["rollback"]
    assert render.needs == ["validate"]
    assert render.when == When(branches=["main", "release/*"], paths=["fabric/**", "hosts/**"])
    assert (render.timeout_s, render.retries, render.backoff_s) == (600, 2, 5)
    assert deploy.approval == "required" and deploy.options == {"strategy": "waves", "batch": 2}
    assert spec.stages["validate"].model_dump() == StageSpec().model_dump()
    assert (spec.stages["validate"].timeout_s, spec.stages["validate"].approval) == (600, "none")
    assert rollback.on_failure == ["deploy", "verify"] and rollback.kind == "rollback"
    assert spec.stages["verify"].name == "verify"
    assert topo_order(spec) == ["validate", "render", "deploy", "verify", "rollback"]


def test_json_round_trip() -> None:
    spec = load_pipeline(FULL, file="pipe.yaml")
    dumped = spec.model_dump(mode="json", by_alias=True)
    assert dumped["stages"]["deploy"]["with"] == {"strategy": "waves", "batch": 2}
    again = PipelineSpec.model_validate(dumped)
    assert again == spec
    assert again.stages["deploy"].kind == "deploy"
    assert PipelineSpec.model_validate_json(spec.model_dump_json(by_alias=True)) == spec


def test_models_are_frozen() -> None:
    spec = load_pipeline(FULL, file="pipe.yaml")
    with pytest.raises(pydantic.ValidationError):
        spec.stages["render"].retries = 5  # type: ignore[misc]


def test_stored_spec_is_still_checked() -> None:
    data = {"version": 1, "name": "x", "stages": {"a": {"needs": ["b"]}, "b": {"needs": ["a"]}}}
    with pytest.raises(pydantic.ValidationError, match="cycle: a -> b -> a"):
        PipelineSpec.model_validate(data)


@pytest.mark.parametrize(
    "value, seconds",
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        (" 2m ", 120.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", [True, "", "m", "10 m", "10d", "1h-5m", "5m1", "inf", "nan", "1e3", float("inf"), None, [1]]
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_unknown_key_points_at_key() -> None:
    diag = _one("""\
        version: 1
        name: p
        stages:
          validate:
            timeout: 5m
            retry: 3
        """)
    assert (diag.line, diag.column, diag.path) == (6, 5, "stages.validate.retry")
    assert diag.message == "unknown key 'retry'"


def test_missing_key_points_at_parent() -> None:
    diag = _one("""\
        version: 1
        stages:
          validate: {}
        """)
    assert (diag.line, diag.path, diag.message) == (1, "name", "missing required key 'name'")


@pytest.mark.parametrize(
    "stage, line, path, fragment",
    [
        ("timeout: soon", 5, "stages.s.timeout", "invalid duration 'soon'"),
        ("timeout: 0", 5, "stages.s.timeout", "greater than 0"),
        ("backoff: -1", 5, "stages.s.backoff", "greater than or equal to 0"),
        ("retries: 11", 5, "stages.s.retries", "less than or equal to 10"),
        ("retries: yes", 5, "stages.s.retries", "valid integer"),
        ("approval: maybe", 5, "stages.s.approval", "'required', 'on_request' or 'none'"),
        ("needs: validate", 5, "stages.s.needs", "valid list"),
        ("when: {branches: []}", 5, "stages.s.when.branches", "at least 1 item"),
        ("when: {tags: [v1]}", 5, "stages.s.when.tags", "unknown key 'tags'"),
        ("with: [a]", 5, "stages.s.with", "valid dictionary"),
    ],
)
def test_schema_errors_are_located(stage: str, line: int, path: str, fragment: str) -> None:
    diag = _one(f"version: 1\nname: p\nstages:\n  s:\n    {stage}\n")
    assert (diag.line, diag.path) == (line, path)
    assert fragment in diag.message


def test_bad_stage_name_points_at_key() -> None:
    diag = _one("version: 1\nname: p\nstages:\n  ok: {}\n  Bad Name: {}\n")
    assert (diag.line, diag.column, diag.path) == (5, 3, "stages.Bad Name")
    assert "pattern" in diag.message


def test_version_and_empty_stages() -> None:
    diags = _errors("version: 2\nname: p\nstages: {}\n")
    assert [(d.line, d.path) for d in diags] == [(1, "version"), (3, "stages")]
    assert "at least 1 item" in diags[1].message


def test_empty_file_and_yaml_errors_are_pipeline_errors() -> None:
    assert _one("").message == "pipeline file is empty"
    diag = _one("version: 1\nname: p\nname: q\n")
    assert diag.line == 3 and "duplicate key 'name'" in diag.message
    diag = _one("version: 1\nstages: [\n")
    assert diag.line == 3 and "syntax error" in diag.message
    assert "valid dictionary" in _one("- a\n- b\n").message


def test_unknown_needs_points_at_item() -> None:
    diag = _one("""\
        version: 1
        name: p
        stages:
          validate: {}
          render:
            needs: [validate, rendr]
        """)
    assert (diag.line, diag.column, diag.path) == (6, 23, "stages.render.needs[1]")
    assert diag.message == "unknown stage 'rendr' in needs"


def test_unknown_on_failure_points_at_item() -> None:
    diag = _one("""\
        version: 1
        name: p
        stages:
          deploy: {}
          rollback:
            on_failure:
              - deploy
              - verify
        """)
    assert (diag.line, diag.path) == (8, "stages.rollback.on_failure[1]")
    assert diag.message == "unknown stage 'verify' in on_failure"


def test_self_need() -> None:
    diag = _one("version: 1\nname: p\nstages:\n  a:\n    needs: [a]\n")
    assert (diag.line, diag.path, diag.message) == (5, "stages.a.needs[0]", "stage 'a' lists itself in needs")


def test_cycle_message() -> None:
    diag = _one("""\
        version: 1
        name: p
        stages:
          first: {}
          b:
            needs: [c]
          c:
            needs: [first, d]
          d:
            needs: [b]
        """)
    assert diag.message == "cycle: b -> c -> d -> b"
    assert (diag.line, diag.path) == (6, "stages.b.needs[0]")


def test_normal_stage_must_not_need_failure_handler() -> None:
    diag = _one("""\
        version: 1
        name: p
        stages:
          deploy: {}
          rollback: {on_failure: [deploy]}
          report: {needs: [rollback]}
        """)
    assert (diag.line, diag.path) == (6, "stages.report.needs[0]")
    assert "failure handler" in diag.message


def test_unknown_kind() -> None:
    diags = _errors(
        """\
        version: 1
        name: p
        stages:
          validate: {}
          lint: {}
          deploy: {uses: push}
        """,
        known_kinds=["validate", "deploy"],
    )
    assert [(d.line, d.path, d.message) for d in diags] == [
        (5, "stages.lint", "unknown stage kind 'lint' (known: deploy, validate)"),
        (6, "stages.deploy.uses", "unknown stage kind 'push' (known: deploy, validate)"),
    ]


def test_all_problems_reported_together() -> None:
    diags = _errors(
        """\
        version: 1
        name: p
        stages:
          a: {needs: [b]}
          b: {needs: [a], timeout: forever}
          c: {needs: [zz], colour: red}
        """,
        known_kinds=["a", "b"],
    )
    assert [(d.line, d.path) for d in diags] == [
        (4, "stages.a.needs[0]"),
        (5, "stages.b.timeout"),
        (6, "stages.c"),
        (6, "stages.c.needs[0]"),
        (6, "stages.c.colour"),
    ]
    assert diags[0].message == "cycle: a -> b -> a"


def test_topo_order_is_stable() -> None:
    spec = load_pipeline(
        "version: 1\nname: p\nstages:\n  z: {needs: [y]}\n  a: {}\n  y: {}\n  m: {needs: [a, y]}\n",
        file="pipe.yaml",
    )
    assert topo_order(spec) == ["a", "y", "z", "m"]


@pytest.mark.parametrize(
    "when, ref, changed, expected",
    [
        (None, "refs/heads/anything", [], True),
        (When(), "refs/heads/x", [], True),
        (When(branches=["main"]), "refs/heads/main", None, True),
        (When(branches=["main"]), "main", None, True),
        (When(branches=["main"]), "refs/heads/maint", None, False),
        (When(branches=["main"]), "refs/tags/main", None, False),
        (When(branches=["release/*"]), "refs/heads/release/1.2", None, True),
        (When(branches=["release/*"]), "refs/heads/release/1.2/fix", None, False),
        (When(branches=["release/**"]), "refs/heads/release/1.2/fix", None, True),
        (When(branches=["feature-*", "main"]), "refs/heads/feature-x", None, True),
        (When(paths=["fabric/**"]), "refs/heads/main", ["fabric/leaves/leaf1.yaml"], True),
        (When(paths=["fabric/**"]), "refs/heads/main", ["hosts/kvm1.yaml", "README.md"], False),
        (When(paths=["fabric/*"]), "refs/heads/main", ["fabric/leaves/leaf1.yaml"], False),
        (When(paths=["**/*.j2"]), "refs/heads/main", ["templates/eos/bgp.j2"], True),
        (When(paths=["fabric/**"]), "refs/heads/main", None, True),
        (When(paths=["fabric/**"]), "refs/heads/main", [], False),
        (When(branches=["main"], paths=["fabric/**"]), "refs/heads/dev", ["fabric/a.yaml"], False),
        (When(branches=["main"], paths=["fabric/**"]), "refs/heads/main", ["fabric/a.yaml"], True),
    ],
)
def test_applies(when: When | None, ref: str, changed: list[str] | None, expected: bool) -> None:
    assert applies(when, ref=ref, changed_paths=changed) is expected


# -- twin: {required} (issue 18) ---------------------------------------------------------------

TWIN_PIPE = """\
version: 1
name: p
{twin}stages:
  render: {{}}
  {stage}:
    needs: [render]
"""


def test_twin_required_is_a_pipeline_option() -> None:
    spec = load_pipeline(TWIN_PIPE.format(twin="twin: {required: true}\n", stage="twin"), file="pipe.yaml")
    assert spec.twin.required is True
    named = load_pipeline(
        "version: 1\nname: p\ntwin:\n  required: true\nstages:\n  render: {}\n  prove: {uses: twin, needs: [render]}\n",
        file="pipe.yaml",
    )
    assert named.twin.required is True  # the twin stage found by its kind, whatever it is called
    assert load_pipeline(TWIN_PIPE.format(twin="", stage="twin"), file="pipe.yaml").twin.required is False


@pytest.mark.parametrize(
    "twin, line, path, fragment",
    [
        ("twin: {required: maybe}\n", 3, "twin.required", "valid boolean"),
        ("twin: {required: 1}\n", 3, "twin.required", "valid boolean"),
        ("twin: {requried: true}\n", 3, "twin.requried", "unknown key 'requried'"),
        ("twin: true\n", 3, "twin", "valid dictionary"),
    ],
)
def test_twin_option_errors_are_located(twin: str, line: int, path: str, fragment: str) -> None:
    diag = _one(TWIN_PIPE.format(twin=twin, stage="twin"))
    assert (diag.line, diag.path) == (line, path)
    assert fragment in diag.message


def test_a_required_twin_needs_a_twin_stage() -> None:
    diag = _one(TWIN_PIPE.format(twin="twin:\n  required: true\n", stage="deploy"))
    assert (diag.line, diag.path) == (4, "twin.required")
    assert "no stage runs the twin" in diag.message
    # not required: no twin stage is fine
    assert load_pipeline(TWIN_PIPE.format(twin="twin: {required: false}\n", stage="deploy"), file="p.yaml").stages


REQUIRED_PIPE = """\
version: 1
name: p
twin: {{required: true}}
stages:
  render: {{}}
  policy:
    needs: [render]
{twin}  deploy:
    needs: {deploy_needs}
  verify:
    needs: [deploy]
"""


@pytest.mark.parametrize(
    "twin, deploy_needs, fragment",
    [
        # beside deploy: both need render, so they run in parallel and a twin failure stops nothing
        ("  twin:\n    needs: [render]\n", "[render]", "does not wait for a twin"),
        # a failure handler: never runs in the normal path
        ("  twin:\n    on_failure: [verify]\n", "[policy]", "'twin' is a failure handler (on_failure)"),
        # filtered: on any other branch it does not run (and deploy, needing it, would be skipped)
        (
            "  twin:\n    needs: [policy]\n    when: {branches: [release]}\n",
            "[twin]",
            "'twin' has a when: filter",
        ),
    ],
)
def test_a_required_twin_must_be_waited_for_by_every_deploy(twin: str, deploy_needs: str, fragment: str) -> None:
    text = REQUIRED_PIPE.format(twin=twin, deploy_needs=deploy_needs)
    diag = _one(text)
    line = text.splitlines().index("  deploy:") + 2  # the deploy stage's needs, 1-based
    assert (diag.file, diag.line, diag.path) == ("pipe.yaml", line, "stages.deploy.needs")
    assert "twin: {required: true} but stage 'deploy' (deploy) does not wait for a twin" in diag.message
    assert fragment in diag.message


def test_a_required_twin_is_waited_for_directly_or_through_others() -> None:
    direct = REQUIRED_PIPE.format(twin="  twin:\n    needs: [policy]\n", deploy_needs="[twin]")
    assert load_pipeline(direct, file="pipe.yaml").twin.required
    through = REQUIRED_PIPE.format(
        twin="  twin:\n    needs: [policy]\n  gate:\n    uses: policy\n    needs: [twin]\n", deploy_needs="[gate]"
    )
    assert load_pipeline(through, file="pipe.yaml").twin.required
    # two deploys: each must wait for it; the second does not
    two = (
        direct
        + "  deploy-b:\n    uses: deploy\n    needs: [policy]\n  verify-b:\n    uses: verify\n    needs: [deploy-b]\n"
    )
    diag = _one(two)
    assert diag.path == "stages.deploy-b.needs" and "stage 'deploy-b' (deploy)" in diag.message
    # not required: any shape is accepted
    loose = REQUIRED_PIPE.replace("twin: {{required: true}}\n", "").format(
        twin="  twin:\n    needs: [render]\n", deploy_needs="[render]"
    )
    assert not load_pipeline(loose, file="pipe.yaml").twin.required


def test_the_deploys_a_twin_does_not_guard() -> None:
    """What the engine puts on each job (``Job.deploys_without_twin``): the deploys after a stage
    that no twin after it precedes (the policy stage's warning and the deploy's backstop)."""
    stages = load_pipeline(
        REQUIRED_PIPE.replace("twin: {{required: true}}\n", "").format(
            twin="  twin:\n    needs: [policy]\n", deploy_needs="[twin]"
        )
        + "  side:\n    uses: deploy\n    needs: [policy]\n  verify-side:\n    uses: verify\n    needs: [side]\n",
        file="pipe.yaml",
    ).stages
    assert deploys_without_twin(stages, "policy") == ["side"]
    assert deploys_without_twin(stages, "twin") == []  # the twin itself is not after itself
    assert deploys_without_twin(stages, "render") == ["side"]
    assert deploys_without_twin(stages) == ["side"]
    # a twin before the policy stage never sees its require_twin: it does not guard the deploys after it
    before = load_pipeline(
        "version: 1\nname: p\nstages:\n  render: {}\n  twin: {needs: [render]}\n  policy: {needs: [twin]}\n"
        "  deploy: {needs: [policy]}\n  verify: {needs: [deploy]}\n",
        file="pipe.yaml",
    ).stages
    assert deploys_without_twin(before, "policy") == ["deploy"] and deploys_without_twin(before) == []
