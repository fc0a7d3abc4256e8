"""`lintas plan PATH [--against REF]`: validate, render and diff a working copy, no NATS needed.

Baseline, in order: ``--against REF`` (that commit of the same repo, rendered the same
way); else the last deployed state when Lintas is reachable; else ``HEAD``, so
uncommitted edits show up like a `terraform plan`.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path

from lintas.engine.artifacts import content_id
from lintas.engine.diagnostics import Diagnostic
from lintas.engine.errors import InputError, LintasError
from lintas.engine.gitrepo import MirrorCache
from lintas.engine.settings import Settings
from lintas.engine.stage import StageResult
from lintas.engine.targets import TargetState
from lintas.workers.model import load_model
from lintas.workers.model.cache import ModelCache
from lintas.workers.render.env import Renderer
from lintas.workers.render.plan import Plan, RenderIndex, make_plan
from lintas.workers.render.targets import kind_of, render_targets


def render_tree(root: Path, cache: ModelCache | None) -> tuple[RenderIndex, dict[str, dict[str, str]]]:
    """Validate and render the work tree at ``root`` (the render sandbox: no repo code runs)."""
    model = load_model(root, cache=cache)
    with Renderer(root) as renderer:
        texts = render_targets(model, model.targets, renderer)
    index = RenderIndex(
        repo=root.name,
        sha="working-copy",
        targets={t: {n: content_id(x.encode()) for n, x in arts.items()} for t, arts in texts.items()},
        kinds={t: kind_of(model, t) for t in texts},
    )
    return index, texts


def checkout_ref(root: Path, ref: str, tmp: Path) -> tuple[Path, str]:
    """A work tree of commit ``ref`` of the repository at ``root`` under ``tmp``, and its sha."""
    import git

    try:
        with git.Repo(root, search_parent_directories=False) as repo:
            sha = repo.commit(ref).hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise InputError(
            [Diagnostic(file=str(root), message=f"a revision ({ref}) needs a git repository, and {root} is not one")],
            summary=f"{root} is not a git repository",
        ) from exc
    except (git.BadName, git.GitCommandError, ValueError) as exc:
        raise InputError(
            [Diagnostic(file=str(root), message=f"no commit {ref!r} in this repository")],
            summary=f"unknown revision {ref!r}",
        ) from exc
    return MirrorCache(tmp / "cache").checkout(str(root), sha, tmp / "tree"), sha


def _render_ref(root: Path, ref: str, cache: ModelCache | None) -> tuple[RenderIndex, dict[str, dict[str, str]], str]:
    with tempfile.TemporaryDirectory(prefix="lintas-plan-") as tmp:
        tree, sha = checkout_ref(root, ref, Path(tmp))
        index, texts = render_tree(tree, cache)
    return index, texts, sha


Deployed = tuple[dict[str, dict[str, str]], dict[str, bytes], dict[str, list[str]]]


def _origin_urls(root: Path) -> set[str]:
    """The working copy's remote URLs, local paths made absolute (as the registry stores them)."""
    import git

    try:
        with git.Repo(root, search_parent_directories=False) as repo:
            urls = {u for remote in repo.remotes for u in remote.urls}
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, git.GitCommandError, ValueError):
        return set()
    return urls | {str((root / u).resolve()) for u in urls if "://" not in u and ":" not in u.split("/")[0]}


def registered_repo(root: Path, settings: Settings) -> str | None:
    """The name under which Lintas knows this working copy: the registry entry whose URL is one
    of its remotes (the run's plan compares against the deployed targets of its own repo)."""
    from lintas.engine.repos import RepoRegistry

    urls = _origin_urls(root)
    names = sorted(
        name
        for name, e in RepoRegistry(settings.home).load().items()
        if e.url in urls or str(Path(e.url).resolve()) in urls
    )
    return names[0] if len(names) == 1 else None


def deployed_of(everything: Mapping[str, TargetState], root: Path, repo: str | None) -> dict[str, TargetState]:
    """The deployed targets of the working copy at ``root``: those of ``repo``, else of the only repo
    anything was deployed from; with several and no way to tell, refuses to guess (a plan against
    another repo's targets would be wrong)."""
    repos = {s.repo for s in everything.values()}
    mine = repo if repo is not None else (next(iter(repos)) if len(repos) == 1 else None)
    if mine is None and repos:
        raise InputError(
            [
                Diagnostic(
                    file=str(root),
                    message=(
                        f"targets are deployed from several repos ({', '.join(sorted(repos))}) and this working copy "
                        "is not registered under one of them: pass --repo NAME"
                    ),
                )
            ],
            summary="which repo is this?",
        )
    return {t: s for t, s in everything.items() if s.repo == mine}


def _deployed_baseline(root: Path, repo: str | None) -> Deployed | None:
    """The last deployed artifacts of this working copy's repo, if a Lintas is reachable (quietly
    None otherwise). The repo is ``repo``, else the registered one whose URL is a remote of the
    working copy, else the only repo anything was deployed from; with several and no way to
    tell, the plan refuses to guess (a plan against another repo's targets would be wrong)."""
    from lintas.engine.app import nats_session
    from lintas.engine.artifacts import NatsArtifactStore
    from lintas.engine.targets import TargetStore

    settings = Settings()
    repo = repo or registered_repo(root, settings)

    async def fetch() -> Deployed:
        async with nats_session(settings, name="lintas-plan") as (_nc, topo):
            deployed = deployed_of(await TargetStore(topo.targets).all(), root, repo)
            store = NatsArtifactStore(topo.artifacts)
            base = {t: s.artifacts for t, s in deployed.items()}
            blobs = {b: (await store.get_blob(b)) or b"" for arts in base.values() for b in arts.values()}
            return base, blobs, {t: list(s.drift) for t, s in deployed.items() if s.drift}

    try:
        result = asyncio.run(asyncio.wait_for(fetch(), 10))
    except InputError:
        raise
    except (LintasError, OSError, TimeoutError):
        return None
    return result if result[0] else None


def _has_head(root: Path) -> bool:
    import git

    try:
        with git.Repo(root, search_parent_directories=False) as repo:
            repo.head.commit  # noqa: B018 - raises when there is no commit
            return True
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return False


def plan_local(
    root: Path, *, against: str | None, cache: ModelCache | None = None, repo: str | None = None
) -> StageResult:
    drifted: dict[str, list[str]] = {}
    try:
        index, texts = render_tree(root, cache)
        blobs: dict[str, bytes] = {}
        for arts in texts.values():
            for text in arts.values():
                blobs[content_id(text.encode())] = text.encode()
        if against is not None:
            base_index, base_texts, sha = _render_ref(root, against, cache)
            baseline, label = base_index.targets, f"commit {sha[:12]} ({against})"
            for arts in base_texts.values():
                for text in arts.values():
                    blobs[content_id(text.encode())] = text.encode()
        elif (deployed := _deployed_baseline(root, repo)) is not None:
            baseline, label, drifted = deployed[0], "deployed", deployed[2]  # drift: as the run's plan
            blobs.update(deployed[1])
        elif not _has_head(root):
            baseline, label = {}, "nothing (not a git repository with commits, and no deployed state known)"
        else:
            base_index, base_texts, sha = _render_ref(root, "HEAD", cache)
            baseline, label = base_index.targets, f"HEAD {sha[:12]} (no deployed state known)"
            for arts in base_texts.values():
                for text in arts.values():
                    blobs[content_id(text.encode())] = text.encode()
    except InputError as exc:
        return StageResult.failed(exc.summary, exc.diagnostics)

    async def fetch(blob_id: str) -> bytes | None:
        return blobs.get(blob_id)

    plan: Plan = asyncio.run(make_plan(index, baseline, against=label, fetch=fetch, texts=texts, drifted=drifted))
    return StageResult.ok({"plan": plan.model_dump(mode="json"), **plan.summary()})
