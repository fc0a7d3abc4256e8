"""Import direction: `engine` defines contracts and never imports `workers` (stages are
reached only through the entry-point registry), and subject names live in one module."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path, *, members: bool = False) -> set[str]:
    """Modules ``path`` imports; with ``members``, ``from a import b`` also counts ``a.b``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if members:
                names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_engine_never_imports_workers() -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(
            m for m in _imports(p) if m == "lintas.workers" or m.startswith("lintas.workers.")
        )
        for p in (ROOT / "engine").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_subject_strings_are_spelled_only_in_subjects_module() -> None:
    pattern = re.compile(r"""["']lintas\.(events|jobs|results|runs|dlq|notify)\b""")
    hits = [
        str(p.relative_to(ROOT))
        for base in ("engine", "workers")
        for p in (ROOT / base).rglob("*.py")
        if p.name != "subjects.py" and pattern.search(p.read_text())
    ]
    assert hits == []


def _module(path: Path) -> str:
    parts = ["lintas", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph(base: str) -> dict[str, set[str]]:
    """Module -> the modules of ``base`` it imports (``from a import b`` counts ``a`` and ``a.b``),
    type-checking-only imports included: a cycle through them is still a tangle."""
    mods = {_module(p): p for p in (ROOT / base).rglob("*.py")}
    return {name: {d for d in _imports(path, members=True) if d in mods and d != name} for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_engine_modules_import_no_cycle() -> None:
    assert _cycles(_graph("engine")) == []


def test_the_api_never_reaches_into_the_cli() -> None:
    offenders = {
        m: sorted(d for d in deps if d == "lintas.engine.cli" or d.startswith("lintas.engine.cli."))
        for m, deps in _graph("engine").items()
        if m.startswith("lintas.engine.api")
    }
    assert {m: d for m, d in offenders.items() if d} == {}


def test_code_imports_lintas_only_through_its_one_namespace() -> None:
    """The wheel installs one import package, ``lintas``: nothing may import the repository's folders
    by their bare names (that works only in a checkout, and would load a second copy of a module)."""
    offenders = {
        str(p.relative_to(ROOT)): bad
        for base in ("engine", "workers", "tests", "bench")
        for p in (ROOT / base).rglob("*.py")
        if (bad := sorted(m for m in _imports(p) if m.split(".")[0] in {"engine", "workers", "pipelines", "policies"}))
    }
    assert offenders == {}


# -- the worker packages (package = the first component under lintas.workers) ----------------------

WORKERS = "lintas.workers."
COMMIT_PATH = (
    "lintas.workers.deploy.ops",
    "lintas.workers.deploy.fleet",
    "lintas.workers.deploy.hostfleet",
    "lintas.workers.deploy.connect",
    "lintas.workers.drivers.frr.driver",
)
DRIVER_MAY_IMPORT = {"lintas.engine.errors", "lintas.engine.redact"}


def _package(module: str) -> str:
    return module.removeprefix(WORKERS).split(".")[0] if module.startswith(WORKERS) else module


def _package_graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for mod, deps in _graph("workers").items():
        out.setdefault(_package(mod), set()).update(_package(d) for d in deps if _package(d) != _package(mod))
    return out


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_worker_packages_import_no_cycle() -> None:
    """``model`` <- ``render`` <- ``deploy``/``hosts``: what several packages share lives in a neutral
    one (``reach``, ``checks``), never in one of them."""
    assert _cycles(_package_graph()) == []


def test_worker_modules_import_no_cycle() -> None:
    """No cycle between modules either, through a package's ``__init__`` re-exports included."""
    assert _cycles(_graph("workers")) == []


def test_drivers_import_nothing_of_lintas_but_engine_errors() -> None:
    """A device driver stands alone: napalm loads it without the renderer, the model or the stages."""
    offenders = {
        str(p.relative_to(ROOT)): bad
        for p in (ROOT / "workers" / "drivers").rglob("*.py")
        if (
            bad := sorted(
                m
                for m in _imports(p)
                if m.startswith("lintas.") and not m.startswith(WORKERS + "drivers") and m not in DRIVER_MAY_IMPORT
            )
        )
    }
    assert offenders == {}
    neutral = {
        m: sorted(d for d in _imports(ROOT / "engine" / f"{m.rsplit('.', 1)[1]}.py") if d.startswith("lintas."))
        for m in DRIVER_MAY_IMPORT
    }
    assert neutral == {"lintas.engine.errors": ["lintas.engine.diagnostics"], "lintas.engine.redact": []}
    assert sorted(d for d in _imports(ROOT / "engine" / "diagnostics.py") if d.startswith("lintas.")) == []
    forbidden = {"render", "model", "deploy", "hosts", "lab"}
    assert not _package_graph().get("drivers", set()) & forbidden


def test_the_walk_from_deploy_to_a_device_commit_stays_out_of_render_and_lab() -> None:
    """Every module on an import path from the deploy stage to a commit (the ops, the fleets and their
    connections, the driver), and everything those import, is outside ``render/`` and ``lab/``; and
    ``hosts/`` never imports back into ``deploy/``."""
    graph = _graph("workers")
    start = "lintas.workers.deploy.deploy"
    reachable = _closure(graph, start)
    on_path = {m for m in reachable if any(t in _closure(graph, m) for t in COMMIT_PATH)}
    walk = on_path | set().union(*(_closure(graph, t) for t in COMMIT_PATH))
    assert set(COMMIT_PATH) - {"lintas.workers.drivers.frr.driver"} <= on_path
    assert sorted(m for m in walk if _package(m) in {"render", "lab"}) == []
    back = sorted(
        f"{m} -> {d}" for m in reachable for d in graph[m] if _package(m) == "hosts" and _package(d) == "deploy"
    )
    assert back == []
    assert not any(_package(d) == "deploy" for m, deps in graph.items() if _package(m) == "hosts" for d in deps)


# -- the deploy stage's functions stay small: state travels in objects (Rollout), not in parameter lists --

MAX_PARAMS = 6


def _params_of(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> list[str]:
    a = fn.args
    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    names += [v.arg for v in (a.vararg, a.kwarg) if v is not None]
    return [n for n in names if n not in ("self", "cls")]


def _is_declaration(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A protocol stub (body ``...``): it mirrors an interface defined elsewhere (napalm's ``ping``)."""
    body = [
        s
        for s in fn.body
        if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and isinstance(s.value.value, str))
    ]
    return all(
        isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is Ellipsis for s in body
    )


def test_no_deploy_function_takes_more_than_six_parameters() -> None:
    over = {}
    for path in sorted((ROOT / "workers" / "deploy").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not _is_declaration(node):
                if len(params := _params_of(node)) > MAX_PARAMS:
                    over[f"{path.relative_to(ROOT)}:{node.name}"] = params
            elif isinstance(node, ast.Lambda) and len(params := _params_of(node)) > MAX_PARAMS:
                over[f"{path.relative_to(ROOT)}:lambda@{node.lineno}"] = params
    assert over == {}
