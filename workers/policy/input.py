"""The policy input document: the validated model, the change, and who changed what, when.

Shape (documented for policy authors in ``policies/README.md``)::

    {"schema_version": 1,
     "fabric": {...}, "devices": {name: {...}}, "links": [...], "vrfs": {...}, "networks": {...},
     "hosts": {...}, "flavors": {...}, "instances": {...}, "inventory": {...},
     "templates": {path: text},
     "change": {"known", "against", "new", "changed", "removed", "unchanged", "targets", "objects"},
     "meta": {"repo", "ref", "branch", "sha", "before", "author", "author_email", "committer",
              "message", "subject", "commit_time", "evaluated_at", "labels", "changed_paths"}}

Addresses are strings, keys are sorted, and nothing depends on dict order or the clock
(``meta.evaluated_at`` is passed in), so one model always gives the same document.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lintas.engine.repofs import RepoFS
from lintas.workers.model.graph import ObjectKey
from lintas.workers.model.model import InfraModel
from lintas.workers.model.plain import plain

SCHEMA_VERSION = 1
LABELS_TRAILER = "Lintas-Labels"
_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*)\s*:\s*(.*)$")
_LABEL = re.compile(r"^[a-z0-9][a-z0-9._/-]{0,62}$")
MAX_TEMPLATE_BYTES = 256 * 1024
MAX_TEMPLATES_TOTAL = 4 * 1024 * 1024


def _management_acl(model: InfraModel, device: Any) -> dict[str, Any]:
    """The management-plane ACL a device gets.

    The model has no ACL field yet. Lintas expects ``fabric.management.acl`` (a list of
    permitted source prefixes) and, per device, an optional ``mgmt_acl`` override; while
    neither exists, the ACL is derived from the management subnet (``source: derived``)
    and the ``mgmt_acl`` policy can be told to insist on an explicit one.
    """
    own = getattr(device, "mgmt_acl", None)
    if own is not None:
        return {"source": "device", "permit": [str(p) for p in own]}
    fabric_acl = getattr(model.fabric.management, "acl", None)
    if fabric_acl is not None:
        return {"source": "fabric.management.acl", "permit": [str(p) for p in fabric_acl]}
    return {"source": "derived", "permit": [str(model.fabric.management.subnet)]}


def _with(doc: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return dict(sorted({**doc, **extra}.items()))


def model_document(model: InfraModel) -> dict[str, Any]:
    devices = {}
    for name in sorted(model.devices):
        d = model.devices[name]
        devices[name] = _with(plain(d), mgmt_acl=plain(_management_acl(model, d)))
    links = [_with(plain(link), key=link.key) for link in model.links]
    networks = {n: _with(plain(net), subnet=str(net.subnet)) for n, net in sorted(model.networks.items())}
    hosts = {n: _with(plain(h), owns_domains=h.owns_domains) for n, h in sorted(model.hosts.items())}
    return {
        "fabric": plain(model.fabric),
        "devices": devices,
        "links": sorted(links, key=lambda x: x["key"]),
        "vrfs": plain(model.vrfs),
        "networks": networks,
        "hosts": hosts,
        "flavors": plain(model.flavors),
        "instances": plain(model.instances),
        "inventory": plain(model.inventory),
    }


def _target(model: InfraModel, name: str, status: str, previous: InfraModel | None = None) -> dict[str, Any]:
    """A target of the change, its kind and role from the model (a removed one's from ``previous``,
    the model before the change, when known: a removed spine is still a spine)."""
    for m in (model, previous) if previous is not None else (model,):
        if name in m.devices:
            return {"name": name, "status": status, "kind": "device", "role": m.devices[name].role}
        if name in m.hosts:
            return {"name": name, "status": status, "kind": "host", "role": m.hosts[name].kind}
    return {"name": name, "status": status, "kind": "unknown", "role": None}


def change_document(
    model: InfraModel,
    plan_summary: Mapping[str, Any] | None,
    affected: Mapping[str, Iterable[ObjectKey]] | None = None,
    previous: InfraModel | None = None,
) -> dict[str, Any]:
    """The change: targets from the render stage's plan summary, objects from the model diff;
    ``previous``: the model before the change (the kind and role of removed targets).

    ``affected`` is :func:`workers.model.graph.affected_by` (target -> changed object keys).
    Without a plan summary the change is unknown (``known: false``), and the lists are empty.
    """
    objects: dict[ObjectKey, set[str]] = {}
    for target, keys in (affected or {}).items():
        for key in keys:
            objects.setdefault(tuple(key), set()).add(target)
    objs = [{"kind": k[0], "name": "/".join(k[1:]), "targets": sorted(t)} for k, t in sorted(objects.items())]
    if plan_summary is None:
        return {
            "known": False,
            "against": None,
            "new": [],
            "changed": [],
            "removed": [],
            "unchanged": 0,
            "targets": [],
            "objects": objs,
        }
    lists = {k: sorted(str(t) for t in plan_summary.get(k) or []) for k in ("new", "changed", "removed")}
    targets = [_target(model, t, status, previous) for status, names in lists.items() for t in names]
    return {
        "known": True,
        "against": plan_summary.get("against"),
        **lists,
        "unchanged": int(plan_summary.get("unchanged") or 0),
        "targets": sorted(targets, key=lambda t: t["name"]),
        "objects": objs,
    }


def parse_labels(message: str) -> list[str]:
    """Labels from ``Lintas-Labels:`` trailers in the last paragraph of a commit message.

    ``Lintas-Labels: emergency, change-1234`` gives ``["change-1234", "emergency"]``; several
    trailers add up; labels are lower-cased; anything that is not a plain label is ignored.
    """
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    if len(paragraphs) < 2:  # a subject line alone has no trailers
        return []
    labels: set[str] = set()
    for line in paragraphs[-1].splitlines():
        m = _TRAILER.match(line.strip())
        if m and m.group(1).lower() == LABELS_TRAILER.lower():
            for raw in re.split(r"[,\s]+", m.group(2)):
                label = raw.strip().lower()
                if _LABEL.fullmatch(label):
                    labels.add(label)
    return sorted(labels)


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def commit_meta(
    root: Path,
    sha: str | None = None,
    *,
    repo: str = "",
    ref: str = "",
    before: str | None = None,
    changed_paths: list[str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Change metadata from the checked-out repo (gitpython); empty fields when not a git repo."""
    import git  # gitpython: imported here, the sandboxed child never needs it

    meta: dict[str, Any] = {
        "repo": repo,
        "ref": ref,
        "branch": ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None,
        "sha": sha,
        "before": before,
        "author": "",
        "author_email": "",
        "committer": "",
        "message": "",
        "subject": "",
        "commit_time": None,
        "evaluated_at": rfc3339(now or datetime.now(UTC)),
        "labels": [],
        "changed_paths": sorted(changed_paths) if changed_paths is not None else None,
    }
    try:
        r = git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return meta
    try:
        c = r.commit(sha or "HEAD")
        message = c.message if isinstance(c.message, str) else c.message.decode("utf-8", "replace")
        meta.update(
            sha=c.hexsha,
            author=str(c.author.name or ""),
            author_email=str(c.author.email or ""),
            committer=str(c.committer.name or ""),
            message=message,
            subject=message.split("\n", 1)[0],
            commit_time=rfc3339(datetime.fromtimestamp(c.committed_date, UTC)),
            labels=parse_labels(message),
        )
        if not ref and not r.head.is_detached:
            meta.update(ref=r.head.ref.path, branch=r.head.ref.name)
    finally:
        r.close()
    return meta


def repo_templates(root: Path) -> dict[str, str]:
    """Text files under ``templates/`` (the repo's overrides), for the secrets policy."""
    fs = RepoFS(root, max_file_bytes=MAX_TEMPLATE_BYTES)
    out: dict[str, str] = {}
    total = 0
    for rel in sorted(fs.glob("templates/**")):
        if rel.lower().endswith((".md", ".txt")):
            continue
        data = fs.read_bytes(rel)
        total += len(data)
        if b"\x00" in data[:8192] or total > MAX_TEMPLATES_TOTAL:
            continue
        out[rel] = data.decode("utf-8", errors="replace")
    return out


def build_input(
    model: InfraModel,
    *,
    plan_summary: Mapping[str, Any] | None,
    meta: Mapping[str, Any],
    affected: Mapping[str, Iterable[ObjectKey]] | None = None,
    templates: Mapping[str, str] | None = None,
    previous: InfraModel | None = None,
) -> dict[str, Any]:
    """The whole input document (see the module docstring); ``previous``: the model before the change."""
    doc = model_document(model)
    doc["schema_version"] = SCHEMA_VERSION
    doc["templates"] = dict(sorted((templates or {}).items()))
    doc["change"] = plain(change_document(model, plan_summary, affected, previous))
    doc["meta"] = plain(dict(meta))
    return dict(sorted(doc.items()))
