"""Pipeline definitions: a small DAG of stages, loaded from YAML with located errors.

.. code-block:: yaml

    version: 1
    name: default
    stages:
      validate: {}                     # every key has a default
      render:
        needs: [validate]              # runs after these succeed
        when:                          # both filters must match; omitted = always
          branches: ["main", "release/*"]   # short branch name; `**` crosses `/`
          paths: ["fabric/**", "hosts/**"]  # any changed path matches any pattern
        timeout: 10m                   # seconds (int/float) or "90s", "10m", "1h30m"; 10m
        retries: 2                     # re-runs of a failed attempt, 0..10; default 0
        backoff: 5s                    # first retry delay, doubled each retry; 5s
      deploy:
        needs: [render]
        approval: required             # required | on_request | none (default none);
                                       # on_request: only if an earlier stage asked
        with: {strategy: waves}        # options for the stage implementation
      rollback:
        uses: rollback                 # implementation ("kind"); default: the stage name
        on_failure: [deploy, verify]   # a failure handler: runs only when one of these
                                       # fails, never in the normal path

A pipeline-wide option (issue 18):

.. code-block:: yaml

    twin: {required: true}             # the change must be proven on a twin: the twin stage
                                       # fails when it cannot build one (default false:
                                       # skipped with its reason, the run goes on unproven)

Rules beyond the schema: ``needs`` and ``on_failure`` name existing stages, not
the stage itself; ``needs`` edges form no cycle; no normal stage needs a
failure handler; with ``known_kinds``, every kind is registered; ``twin.required``
needs a stage of kind ``twin``, and every stage of kind ``deploy`` must need (directly or
through others) a twin stage of the normal path with no ``when:`` filter
(:func:`deploys_without_twin`): a twin beside deploy, a twin as a failure handler or a twin
that runs only on some branches would let a change reach production unproven.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from lintas.engine import resources
from lintas.engine.diagnostics import Diagnostic, format_path
from lintas.engine.errors import PipelineError, YamlError
from lintas.engine.repofs import glob_match
from lintas.engine.yamlsafe import load_yaml, pydantic_diagnostics, read_limited

STAGE_NAME = r"^[a-z][a-z0-9_-]{0,40}$"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SKIP_GRAPH = "lintas.pipeline.skip_graph"


def parse_duration(value: object) -> float:
    """Seconds from a number or a string like ``90``, ``90s``, ``10m``, ``1h30m``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '90s', '10m' or '1h'")
    seconds: float | None = None
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        parts = _DURATION.findall(text)
        if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif parts and "".join(n + u for n, u in parts) == text:
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        else:
            raise ValueError(f"invalid duration {value!r}; use e.g. 30, '90s', '10m' or '1h'")
    if seconds is None or not math.isfinite(seconds):
        raise ValueError("expected a duration such as 30, '90s', '10m' or '1h'")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
StageName = Annotated[str, StringConstraints(pattern=STAGE_NAME)]
_Patterns = Annotated[list[Annotated[str, StringConstraints(min_length=1)]], Field(min_length=1)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class When(_Spec):
    """Run filter. Omitted fields do not filter."""

    branches: _Patterns | None = None
    paths: _Patterns | None = None


class StageSpec(_Spec):
    model_config = ConfigDict(revalidate_instances="always")

    uses: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    needs: list[str] = Field(default_factory=list)
    when: When | None = None
    timeout_s: Duration = Field(default=600.0, alias="timeout", gt=0)
    retries: int = Field(default=0, ge=0, le=10, strict=True)
    backoff_s: Duration = Field(default=5.0, alias="backoff", ge=0)
    approval: Literal["required", "on_request", "none"] = "none"
    on_failure: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict, alias="with")
    _name: str = PrivateAttr(default="")

    @property
    def name(self) -> str:
        """The stage's key in :attr:`PipelineSpec.stages` (set by the pipeline)."""
        return self._name

    @property
    def kind(self) -> str:
        """The registered implementation that runs this stage."""
        return self.uses or self._name

    @property
    def is_failure_handler(self) -> bool:
        return bool(self.on_failure)


class TwinOption(_Spec):
    """``twin:``, the pipeline's say on the twin stage (issue 18). A top-level key rather than
    the twin stage's ``with:``: it is the repo's rule for every change (as a policy's
    ``require_twin`` is for some), it is checked here with the file and line like every key
    (``with:`` is free-form, read only by the stage), and it stays meaningful when the
    pipeline names the twin stage otherwise (``prove: {uses: twin}``)."""

    required: bool = Field(default=False, strict=True)


TWIN_KIND = "twin"
DEPLOY_KIND = "deploy"


class PipelineSpec(_Spec):
    version: Literal[1]
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    stages: Annotated[dict[StageName, StageSpec], Field(min_length=1)]
    twin: TwinOption = Field(default_factory=TwinOption)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> PipelineSpec:
        for name, stage in self.stages.items():
            stage._name = name
        if not (info.context or {}).get(_SKIP_GRAPH):
            problems = graph_problems(_edges_of(self.stages))
            if problems:
                raise ValueError("; ".join(f"{format_path(p)}: {m}" for p, m in problems))
        return self


_Edges = Mapping[str, tuple[Sequence[object], Sequence[object]]]


def _edges_of(stages: Mapping[str, StageSpec]) -> dict[str, tuple[Sequence[object], Sequence[object]]]:
    return {name: (s.needs, s.on_failure) for name, s in stages.items()}


def graph_problems(edges: _Edges) -> list[tuple[list[str | int], str]]:
    """Problems in the ``needs``/``on_failure`` graph, as (document path, message).

    ``edges`` maps stage name -> (needs, on_failure); non-string entries are ignored
    (the schema reports them), so this also runs on raw, partly invalid data.
    """
    out: list[tuple[list[str | int], str]] = []
    needs: dict[str, list[str]] = {name: [] for name in edges}
    handlers = {name for name, (_, on_fail) in edges.items() if on_fail}
    for name, (need_list, fail_list) in edges.items():
        for field, items in (("needs", need_list), ("on_failure", fail_list)):
            for i, target in enumerate(items):
                if not isinstance(target, str):
                    continue
                where: list[str | int] = ["stages", name, field, i]
                if target == name:
                    out.append((where, f"stage '{name}' lists itself in {field}"))
                elif target not in edges:
                    out.append((where, f"unknown stage '{target}' in {field}"))
                elif field == "needs":
                    needs[name].append(target)
                    if target in handlers and name not in handlers:
                        why = "a failure handler (on_failure) that never runs in the normal path"
                        out.append((where, f"stage '{name}' needs '{target}', {why}"))
    for cycle in _cycles(needs):
        first, nxt = cycle[0], cycle[1]
        index = list(edges[first][0]).index(nxt)
        out.append((["stages", first, "needs", index], "cycle: " + " -> ".join(cycle)))
    return out


def _cycles(needs: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Each distinct cycle once, starting at its earliest-declared stage."""
    order = {name: i for i, name in enumerate(needs)}
    left = set(needs) - set(topo_sort(needs, strict=False))
    cycles: list[list[str]] = []
    done: set[str] = set()
    for start in needs:
        if start not in left or start in done:
            continue
        walk: list[str] = []
        pos: dict[str, int] = {}
        node = start
        while node not in pos and node not in done:
            pos[node] = len(walk)
            walk.append(node)
            node = next(n for n in needs[node] if n in left)
        if node in pos:
            ring = walk[pos[node] :]
            k = min(range(len(ring)), key=lambda j: order[ring[j]])
            ring = ring[k:] + ring[:k]
            cycles.append([*ring, ring[0]])
        done.update(walk)
    return cycles


def topo_sort(needs: Mapping[str, Sequence[str]], *, strict: bool = True) -> list[str]:
    """Kahn's algorithm, always taking the earliest-declared ready stage.

    Needs naming unknown stages are ignored. With ``strict=False`` stages on or
    behind a cycle are left out instead of raising ValueError.
    """
    names = list(needs)
    index = {name: i for i, name in enumerate(names)}
    waiting = dict.fromkeys(names, 0)
    dependents: dict[str, list[str]] = {name: [] for name in names}
    for name, deps in needs.items():
        for dep in set(deps):
            if dep in index:
                waiting[name] += 1
                dependents[dep].append(name)
    ready = [index[name] for name in names if waiting[name] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = names[heapq.heappop(ready)]
        order.append(name)
        for other in dependents[name]:
            waiting[other] -= 1
            if waiting[other] == 0:
                heapq.heappush(ready, index[other])
    if strict and len(order) < len(names):
        stuck = [name for name in names if waiting[name] > 0]
        raise ValueError(f"needs form a cycle among: {', '.join(stuck)}")
    return order


def topo_order(spec: PipelineSpec) -> list[str]:
    """All stage names, each after its needs; ties keep declaration order."""
    return topo_sort({name: s.needs for name, s in spec.stages.items()})


def _branch(ref: str) -> str:
    return ref.removeprefix("refs/heads/")


def applies(when: When | None, *, ref: str, changed_paths: Collection[str] | None) -> bool:
    """Whether a stage with this filter runs for a push of ``ref`` changing these paths.

    ``changed_paths=None`` means unknown (e.g. a new branch), which matches.
    """
    if when is None:
        return True
    if when.branches is not None:
        branch = _branch(ref)
        if not any(glob_match(p, branch) for p in when.branches):
            return False
    if when.paths is not None and changed_paths is not None:
        return any(glob_match(p, path) for path in changed_paths for p in when.paths)
    return True


def _raw_edges(data: object) -> dict[str, tuple[Sequence[object], Sequence[object]]]:
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        return {}
    out: dict[str, tuple[Sequence[object], Sequence[object]]] = {}
    for name, stage in stages.items():
        if not isinstance(name, str):
            continue
        stage = stage if isinstance(stage, dict) else {}
        need = stage.get("needs")
        fail = stage.get("on_failure")
        out[name] = (need if isinstance(need, list) else [], fail if isinstance(fail, list) else [])
    return out


def _kind_problems(data: object, known: Collection[str]) -> list[tuple[list[str | int], str]]:
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        return []
    out: list[tuple[list[str | int], str]] = []
    listing = ", ".join(sorted(known)) or "none"
    for name, stage in stages.items():
        uses = stage.get("uses") if isinstance(stage, dict) else None
        kind = uses if isinstance(uses, str) and uses else name
        if isinstance(kind, str) and kind not in known:
            where: list[str | int] = ["stages", name, "uses"] if kind is uses else ["stages", name]
            out.append((where, f"unknown stage kind '{kind}' (known: {listing})"))
    return out


def downstream(stages: Mapping[str, StageSpec], name: str) -> set[str]:
    """The stages of the normal path (not failure handlers) that need ``name``, directly or
    through others: what runs after it when it succeeds."""
    out: set[str] = set()
    frontier = [name]
    while frontier:
        current = frontier.pop()
        for other, spec in stages.items():
            if other not in out and not spec.is_failure_handler and current in spec.needs:
                out.add(other)
                frontier.append(other)
    return out


def upstream_of(stages: Mapping[str, StageSpec], name: str) -> set[str]:
    """The stages ``name`` needs, directly or through others (unknown names ignored)."""
    out: set[str] = set()
    frontier = [name]
    while frontier:
        spec = stages.get(frontier.pop())
        for need in spec.needs if spec is not None else ():
            if need not in out and need in stages:
                out.add(need)
                frontier.append(need)
    return out


def proving_twin(spec: StageSpec) -> bool:
    """A twin stage that runs on every push of the normal path: kind ``twin``, not a failure
    handler, no ``when:`` filter."""
    return spec.kind == TWIN_KIND and not spec.is_failure_handler and spec.when is None


def deploys_without_twin(stages: Mapping[str, StageSpec], after: str | None = None) -> list[str]:
    """The stages of kind ``deploy`` that do not need (directly or through others) a proving twin
    stage (:func:`proving_twin`); ``after``: only the deploys downstream of that stage, and only
    twins downstream of it (or itself) count (a twin before the policy stage never sees its
    ``require_twin``)."""
    after_it = downstream(stages, after) if after is not None else set(stages)
    deploys = sorted(n for n in after_it if stages[n].kind == DEPLOY_KIND)
    twins = {t for t in (*after_it, *([after] if after is not None else [])) if proving_twin(stages[t])}
    return [d for d in deploys if not twins & upstream_of(stages, d)]


def twin_problems(spec: PipelineSpec) -> list[tuple[list[str | int], str]]:
    """``twin: {required: true}``: a twin stage exists, and every deploy waits for one."""
    if not spec.twin.required:
        return []
    if not any(s.kind == TWIN_KIND for s in spec.stages.values()):
        return [
            (
                ["twin", "required"],
                "twin: {required: true} but no stage runs the twin (add a stage of kind 'twin' before deploy)",
            )
        ]
    out: list[tuple[list[str | int], str]] = []
    for name in deploys_without_twin(spec.stages):
        twins = [n for n, s in spec.stages.items() if s.kind == TWIN_KIND]
        why = "; ".join(_why_not_proving(n, spec.stages[n]) for n in twins if not proving_twin(spec.stages[n]))
        out.append(
            (
                ["stages", name, "needs"],
                f"twin: {{required: true}} but stage '{name}' (deploy) does not wait for a twin: it must need "
                f"(directly or through others) a twin stage that always runs ({', '.join(twins)}"
                + (f": {why}" if why else "")
                + "), or a twin failure would not stop the deploy",
            )
        )
    return out


def _why_not_proving(name: str, spec: StageSpec) -> str:
    if spec.is_failure_handler:
        return f"'{name}' is a failure handler (on_failure), never run in the normal path"
    return f"'{name}' has a when: filter, so it does not run on every push"


def confirmation_problems(spec: PipelineSpec, confirmed_by: Mapping[str, str]) -> list[tuple[list[str | int], str]]:
    """A stage whose kind leaves changes pending until a stage of another kind confirms them
    (``deploy`` commits with a device-side revert timer that only ``verify`` confirms) must be
    followed by such a stage; otherwise the run would end succeeded and the devices revert."""
    out: list[tuple[list[str | int], str]] = []
    for name, stage in spec.stages.items():
        want = confirmed_by.get(stage.kind)
        if want is None or stage.is_failure_handler:
            continue
        if not any(spec.stages[d].kind == want for d in downstream(spec.stages, name)):
            out.append(
                (
                    ["stages", name],
                    (
                        f"stage '{name}' ({stage.kind}) leaves its changes pending until a '{want}' stage confirms them; "
                        f"add a stage of kind '{want}' that needs '{name}' (directly or through others), or the devices "
                        "would revert after the run is reported succeeded"
                    ),
                )
            )
    return out


def load_pipeline(
    text: str | bytes,
    *,
    file: str,
    known_kinds: Collection[str] | None = None,
    max_timeout_s: float | None = None,
    confirmed_by: Mapping[str, str] | None = None,
) -> PipelineSpec:
    """Parse and check a pipeline; every problem found is in the one PipelineError.

    ``max_timeout_s``: the operator's ceiling on stage timeouts (``LINTAS_MAX_STAGE_TIMEOUT_S``);
    a repo's pipeline asking for more is refused, never silently cut down. ``confirmed_by``: stage
    kind -> the kind that must follow it (:func:`confirmation_problems`; from the registry)."""
    try:
        doc = load_yaml(text, file=file)
    except YamlError as exc:
        raise _invalid(file, exc.diagnostics) from None
    if doc.data is None:
        raise _invalid(file, [doc.diagnostic([], "pipeline file is empty")])
    diags: list[Diagnostic] = []
    spec: PipelineSpec | None = None
    try:
        spec = PipelineSpec.model_validate(doc.data, context={_SKIP_GRAPH: True})
    except ValidationError as exc:
        diags.extend(pydantic_diagnostics(exc, doc))
    problems = graph_problems(_raw_edges(doc.data))
    if known_kinds is not None:
        problems += _kind_problems(doc.data, known_kinds)
    diags.extend(doc.diagnostic(path, message) for path, message in problems)
    if spec is not None and max_timeout_s is not None:
        diags.extend(
            doc.diagnostic(
                ["stages", name, "timeout"],
                f"timeout {stage.timeout_s:g}s exceeds the operator's maximum of {max_timeout_s:g}s "
                "(LINTAS_MAX_STAGE_TIMEOUT_S)",
            )
            for name, stage in spec.stages.items()
            if stage.timeout_s > max_timeout_s
        )
    if spec is not None and confirmed_by:
        diags.extend(doc.diagnostic(path, message) for path, message in confirmation_problems(spec, confirmed_by))
    if spec is not None and not problems:  # the graph is sound: which stages a deploy waits for means something
        diags.extend(doc.diagnostic(path, message) for path, message in twin_problems(spec))
    if diags or spec is None:
        diags.sort(key=lambda d: (d.line or 0, d.column or 0, d.path))
        raise _invalid(file, diags)
    return spec


def _invalid(file: str, diags: list[Diagnostic]) -> PipelineError:
    return PipelineError(diags, summary=f"invalid pipeline {file}: {len(diags)} problem(s)")


DEFAULT_PIPELINE = resources.pipelines_dir() / "default.yaml"


def load_default_pipeline(path: Path | None = None) -> PipelineSpec:
    """The pipeline used when a repository has no ``.lintas/pipeline.yaml``."""
    path = path or DEFAULT_PIPELINE
    shown = "pipelines/default.yaml" if path == DEFAULT_PIPELINE else str(path)
    try:
        data = read_limited(path, max_bytes=1024 * 1024, display_name=shown)
    except YamlError as exc:
        raise _invalid(shown, exc.diagnostics) from None
    return load_pipeline(data, file=shown)
