"""The policy input document: shape, determinism, the change, commit metadata and labels."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git
import pytest

from lintas.workers.model import InfraModel, affected_by, load_model
from lintas.workers.policy.change import change_of, model_at_revision, rendered_change
from lintas.workers.policy.input import build_input, commit_meta, parse_labels
from tests.policy.conftest import FIXED_META, TEMPLATE


def _keys_sorted(value: Any) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(_keys_sorted(v) for v in value.values())
    if isinstance(value, list):
        return all(_keys_sorted(v) for v in value)
    return True


@pytest.mark.parametrize(
    "message, labels",
    [
        ("Fix MTU\n\nLintas-Labels: emergency, change-1234\n", ["change-1234", "emergency"]),
        (
            "Fix MTU\n\nBody text.\n\nSigned-off-by: A <a@b>\nlintas-labels: Emergency\nLintas-Labels: p1 x\n",
            ["emergency", "p1", "x"],
        ),
        ("Lintas-Labels: emergency\n", []),  # a subject line is not a trailer
        ("Fix\n\nLintas-Labels: emergency\n\nmore text after it\n", []),  # only the last paragraph holds trailers
        ("Fix\n\nLintas-Labels: ok, $(rm -rf /), UPPER\n", ["ok", "upper"]),
    ],
)
def test_labels_come_from_the_commit_trailer(message: str, labels: list[str]) -> None:
    assert parse_labels(message) == labels


def test_input_shape(template_input: dict[str, Any]) -> None:
    doc = template_input
    assert set(doc) == {
        "schema_version",
        "fabric",
        "devices",
        "links",
        "vrfs",
        "networks",
        "hosts",
        "flavors",
        "instances",
        "inventory",
        "templates",
        "change",
        "meta",
    }
    assert _keys_sorted(doc)
    leaf = doc["devices"]["leaf-01"]
    assert (leaf["mgmt_ip"], leaf["loopback"], leaf["asn"], leaf["role"]) == (
        "10.255.0.21/24",
        "10.250.0.11",
        65111,
        "leaf",
    )
    assert leaf["mgmt_acl"] == {"permit": ["10.255.0.0/24"], "source": "derived"}
    assert doc["fabric"]["underlay"]["password"] == "env:FABRIC_BGP_PASSWORD"
    assert doc["networks"]["uat-web"]["subnet"] == "10.30.10.0/24"
    assert doc["instances"]["uat-web-01"]["uuid"] == "3f0c6a52-6c6e-4b8e-9a57-0e3f5d1b2a01"
    assert doc["hosts"]["osc-01"]["owns_domains"] is False
    assert doc["links"][0]["key"] == "spine-01:swp1--leaf-01:swp51"
    assert doc["meta"] == FIXED_META
    assert doc["change"]["known"] is True and doc["change"]["targets"] == []


def test_input_is_deterministic_json(template_model: InfraModel) -> None:
    a = build_input(template_model, plan_summary=None, meta=FIXED_META)
    b = build_input(load_model(TEMPLATE), plan_summary=None, meta=FIXED_META)
    assert json.dumps(a) == json.dumps(b)
    assert a["change"] == {
        "known": False,
        "against": None,
        "new": [],
        "changed": [],
        "removed": [],
        "unchanged": 0,
        "targets": [],
        "objects": [],
    }


def test_change_from_the_plan_and_the_model_diff(tmp_path: Path, template_model: InfraModel) -> None:
    root = tmp_path / "repo"
    shutil.copytree(TEMPLATE, root)
    tenants = root / "fabric" / "tenants.yaml"
    tenants.write_text(
        tenants.read_text() + "\n  - {name: uat-db, vrf: UAT, vlan: 30, vni: 10030, "
        "gateway: 10.30.30.1/24, leaves: [leaf-01, leaf-02]}\n"
    )
    new = load_model(root)
    affected = affected_by(template_model, new)
    summary = {
        "against": "deployed",
        "new": [],
        "changed": ["leaf-02", "leaf-01"],
        "removed": ["old-leaf"],
        "unchanged": 6,
    }
    change = build_input(new, plan_summary=summary, meta=FIXED_META, affected=affected)["change"]
    assert change["targets"] == [
        {"kind": "device", "name": "leaf-01", "role": "leaf", "status": "changed"},
        {"kind": "device", "name": "leaf-02", "role": "leaf", "status": "changed"},
        {"kind": "unknown", "name": "old-leaf", "role": None, "status": "removed"},
    ]
    assert {"kind": "network", "name": "uat-db", "targets": ["leaf-01", "leaf-02"]} in change["objects"]
    # without a render, the change is unknown: it is never guessed from the model diff
    derived, _ = change_of(new, template_model, None, baseline_known=True, against="commit x")
    assert derived is None


def test_commit_metadata_from_the_checkout(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    shutil.copytree(TEMPLATE, root)
    repo = git.Repo.init(root, initial_branch="main")
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "Ada Operator")
        cw.set_value("user", "email", "ada@example.invalid")
    repo.git.add(A=True)
    repo.git.commit(m="Initial import")
    first = repo.head.commit.hexsha
    (root / "fabric" / "fabric.yaml").write_text(
        (root / "fabric" / "fabric.yaml").read_text().replace("maximum_paths: 4", "maximum_paths: 8")
    )
    repo.git.commit(a=True, m="Raise ECMP width\n\nLintas-Labels: emergency, change-42\n")
    sha = repo.head.commit.hexsha
    repo.close()
    now = datetime(2026, 12, 24, 9, 0, tzinfo=UTC)
    meta = commit_meta(root, sha, repo="infra", ref="refs/heads/main", before=first, now=now)
    assert meta["author"] == "Ada Operator" and meta["author_email"] == "ada@example.invalid"
    assert meta["subject"] == "Raise ECMP width" and meta["labels"] == ["change-42", "emergency"]
    assert meta["branch"] == "main" and meta["sha"] == sha and meta["evaluated_at"] == "2026-12-24T09:00:00Z"
    assert meta["commit_time"].endswith("Z")
    old = model_at_revision(root, first)
    assert old is not None and old.fabric.underlay.maximum_paths == 4
    rendered = rendered_change(root, first)  # a full render of both commits
    summary, affected = change_of(load_model(root), old, rendered, baseline_known=True, against=f"commit {first}")
    assert summary is not None and "spine-01" in summary["changed"] and affected["spine-01"] == {("fabric", "underlay")}
    assert rendered_change(root, "no-such-commit") is None


def test_objects_are_attributed_to_the_plans_targets(tmp_path: Path, template_model: InfraModel) -> None:
    """The graph says leaf-04's own values affect leaf-04 only; the plan (a sound render) says every
    switch changes. The policy input follows the plan: the device object is attributed to all six,
    and no object names a target the plan does not change."""
    root = tmp_path / "repo"
    shutil.copytree(TEMPLATE, root)
    devices = root / "fabric" / "devices.yaml"
    devices.write_text(
        re.sub(
            r"(  - name: leaf-04\n(?:    .*\n)*?    id: \d+\n)", r"\g<1>    vtep_ip: 10.99.1.14\n", devices.read_text()
        )
    )
    new = load_model(root)
    switches = sorted(new.devices)
    plan = {"against": "deployed", "new": [], "changed": switches, "removed": [], "unchanged": 2}
    summary, affected = change_of(new, template_model, plan, baseline_known=True, against="deployed")
    change = build_input(new, plan_summary=summary, meta=FIXED_META, affected=affected)["change"]
    assert [t["name"] for t in change["targets"]] == switches
    (device,) = [o for o in change["objects"] if o["kind"] == "device"]
    assert device["name"] == "leaf-04" and device["targets"] == switches
    assert all(set(o["targets"]) <= set(switches) for o in change["objects"])
