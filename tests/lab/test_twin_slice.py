"""A change's slice (issue 18, point 4; workers/twin/slice.py), pure: on the template and on a
generated 2 x 32 fabric (the one bench/ uses), which switches a twin holds and why, the model it
verifies and what it says is out of its scope. The slice built and proven for real:
tests/lab/test_twin_stage.py."""

from __future__ import annotations

from functools import cache

import pytest

from lintas.engine.infra_repo import TEMPLATE_DIR
from lintas.workers.deploy import checks as C
from lintas.workers.lab.topology import plan_lab, twin_instance
from lintas.workers.model import load_model
from lintas.workers.model.generate import generate_fabric
from lintas.workers.model.loader import load_model_texts
from lintas.workers.model.model import InfraModel
from lintas.workers.render.plan import Plan, TargetPlan
from lintas.workers.twin.slice import Slice, compute_slice, out_of_scope, restrict, slice_of
from tests.render import as_eos, model_of, template_texts

SPINES = {"spine-01", "spine-02"}


@cache
def template() -> InfraModel:
    return load_model(TEMPLATE_DIR)


@cache
def fabric_2x32() -> InfraModel:
    return load_model_texts(generate_fabric(32, n_spines=2, vnis_per_leaf=4))


def assert_every_touched_network_has_an_unchanged_carrier(model: InfraModel, cut: Slice, changed: set[str]) -> None:
    for leaf in changed:
        for k in model.networks_by_leaf.get(leaf, ()):
            net = model.networks[k]
            carriers = [n for n in net.leaves if n in cut.switches and n not in changed]
            assert carriers, f"VNI {net.vni} of {leaf}: no unchanged leaf in the slice carries it"
            assert any(f"carries VNI {net.vni} unchanged" in w for n in carriers for w in cut.switches[n])


def test_a_one_leaf_change_on_the_template_is_that_leaf_both_spines_and_one_unchanged_carrier() -> None:
    m = template()
    cut = compute_slice(m, ["leaf-01"])
    assert set(cut.switches) == {"leaf-01", "leaf-02", "spine-01", "spine-02"} and not cut.whole
    assert cut.switches["leaf-01"] == ["changed"]
    assert cut.switches["spine-01"] == ["peers with leaf-01"] == cut.switches["spine-02"]
    # leaf-02 is the only leaf besides leaf-01 with VNI 10020, and carries the others too: one leaf is enough
    assert cut.switches["leaf-02"][:3] == [
        "carries VNI 10010 unchanged",
        "carries VNI 10020 unchanged",
        "carries VNI 10200 unchanged",
    ]
    assert "carries VRF UAT (L3 VNI 50001) unchanged" in cut.switches["leaf-02"]
    assert_every_touched_network_has_an_unchanged_carrier(m, cut, {"leaf-01"})
    assert cut.notes == []


def test_an_unchanged_carrier_already_in_the_slice_is_preferred() -> None:
    """leaf-02 changed and host osc-01 (on leaf-03): VNI 10010 is proven from leaf-03, in the slice
    already for its host, not from leaf-01, the first by name; VNI 10020 only leaf-01 carries
    besides leaf-02, and once leaf-01 is in, VNI 10200 is proven from it (the first in the slice)."""
    cut = compute_slice(template(), ["leaf-02", "osc-01"])
    assert set(cut.switches) == {"leaf-01", "leaf-02", "leaf-03"} | SPINES
    assert cut.switches["leaf-03"] == ["uplink leaf of host osc-01", "carries VNI 10010 unchanged"]
    assert cut.switches["leaf-01"][:2] == ["carries VNI 10020 unchanged", "carries VNI 10200 unchanged"]
    assert cut.hosts == {"osc-01": ["changed"]} and cut.notes == []


def test_a_host_change_builds_the_host_its_leaf_and_the_leafs_peers() -> None:
    cut = compute_slice(template(), ["kvm-uat-01"])
    assert cut.switches == {
        "leaf-01": ["uplink leaf of host kvm-uat-01"],
        "spine-01": ["peers with leaf-01"],
        "spine-02": ["peers with leaf-01"],
    }
    assert cut.hosts == {"kvm-uat-01": ["changed"]} and cut.host_names == {"kvm-uat-01"}
    assert cut.notes == [] and not cut.whole
    assert "kvm-uat-01: changed" in cut.lines()
    # only the changed host: osc-01 (unchanged, on leaf-03) is not built even when its leaf is
    both = compute_slice(template(), ["kvm-uat-01", "leaf-03"])
    assert both.host_names == {"kvm-uat-01"} and "leaf-03" in both.switches


def test_a_host_whose_leaf_no_twin_can_build_is_not_in_the_slice() -> None:
    m = model_of(as_eos(template_texts(), {"leaf-01"}))
    cut = compute_slice(m, ["kvm-uat-01"])
    assert cut.hosts == {} and cut.switches == {}
    assert "host kvm-uat-01 changed: not built, its uplink leaf leaf-01 cannot be built in a twin" in cut.notes


def test_a_spine_change_is_the_spine_and_every_leaf_not_the_other_spine() -> None:
    m = template()
    cut = compute_slice(m, ["spine-01"])
    assert set(cut.switches) == {"spine-01", "leaf-01", "leaf-02", "leaf-03", "leaf-04"}
    assert all(cut.switches[n] == ["peers with spine-01"] for n in cut.switches if n != "spine-01")
    held = restrict(m, cut.names)
    [line] = out_of_scope(m, held)
    assert line.startswith("spine-02 not in the slice: sessions leaf-01 ↔ spine-02, leaf-02 ↔ spine-02, ")
    assert "4 ping(s) to it not run" in line


def test_a_change_touching_everything_is_the_whole_topology() -> None:
    m = template()
    cut = compute_slice(m, sorted(m.targets))
    assert cut.whole and set(cut.switches) == set(m.devices)
    assert all(why[0] == "changed" for why in cut.switches.values())
    assert out_of_scope(m, restrict(m, cut.names)) == []
    assert restrict(m, cut.names) == m  # the whole model, unchanged


def test_the_slice_of_a_render_plan_reads_new_and_changed_targets() -> None:
    def tp(name: str, status: str) -> TargetPlan:
        return TargetPlan.model_validate({"target": name, "status": status, "artifacts": {}})

    plan = Plan(
        repo="infra",
        sha="a" * 40,
        against="deployed",
        targets={
            "leaf-03": tp("leaf-03", "changed"),
            "leaf-01": tp("leaf-01", "unchanged"),
            "spine-01": tp("spine-01", "unchanged"),
            "leaf-09": tp("leaf-09", "removed"),
        },
    )
    cut = slice_of(template(), plan)
    assert cut.switches["leaf-03"] == ["changed"] and set(cut.switches) == {"leaf-03", "leaf-01"} | SPINES
    assert any(n.startswith("leaf-09 removed from the model") for n in cut.notes)


def test_verify_on_the_restricted_model_checks_only_what_the_slice_holds() -> None:
    m = template()
    held = restrict(m, compute_slice(m, ["leaf-01"]).names)
    assert sorted(held.devices) == ["leaf-01", "leaf-02", "spine-01", "spine-02"]
    exp, full = C.expected_state(held, "leaf-01"), C.expected_state(m, "leaf-01")
    assert set(exp.peers.values()) == SPINES == set(full.peers.values())
    vtep = {n: str(m.devices[n].vtep) for n in ("leaf-02", "leaf-03", "leaf-04")}
    assert exp.vnis[10010] == [vtep["leaf-02"]] and full.vnis[10010] == sorted(vtep.values())
    assert exp.vnis[10020] == [vtep["leaf-02"]]
    assert {p.destination for p in exp.pings if p.df} == {vtep["leaf-02"]}
    spine = C.expected_state(held, "spine-01")
    assert set(spine.peers.values()) == {"leaf-01", "leaf-02"} and len(C.expected_state(m, "spine-01").peers) == 4
    lines = out_of_scope(m, held)
    assert [ln.split(" ", 1)[0] for ln in lines] == ["leaf-03", "leaf-04"]
    assert lines[0].startswith("leaf-03 not in the slice: sessions spine-01 ↔ leaf-03, spine-02 ↔ leaf-03 not checked")
    assert "remote VTEP of VNI 10010 on leaf-01, 10010 on leaf-02, 10200 on leaf-01" in lines[0]
    assert set(held.hosts) == {"kvm-uat-01"}  # osc-01's leaf (leaf-03) is not held


def test_a_one_leaf_change_on_a_2x32_fabric_is_a_four_switch_slice() -> None:
    m = fabric_2x32()
    assert len(m.leaves) == 32 and len(m.spines) == 2
    cut = compute_slice(m, ["leaf-05"])
    assert set(cut.switches) == {"leaf-05", "leaf-06"} | SPINES, cut.lines()
    assert_every_touched_network_has_an_unchanged_carrier(m, cut, {"leaf-05"})
    held = restrict(m, cut.names)
    assert len(out_of_scope(m, held)) == 30
    # the twin's lab: 4 switches, their ports to the 30 leaves not built cabled to one stub namespace
    lab = plan_lab(m, twin_instance("00aa"), only=cut.names, hosts=False)
    assert [s.name for s in lab.switches] == ["leaf-05", "leaf-06", "spine-01", "spine-02"]
    assert sum(p.kind == "fabric" for p in lab.links) == 4
    assert sum(p.b.namespace == "lt00aa-out-of-slice" for p in lab.links) == 60


@pytest.mark.parametrize(
    ("changed", "size"), [(["spine-02"], 33), (["leaf-01", "leaf-32"], 6), ("everything", 34)], ids=str
)
def test_2x32_slices(changed: list[str] | str, size: int) -> None:
    m = fabric_2x32()
    names = sorted(m.devices) if changed == "everything" else list(changed)
    cut = compute_slice(m, names)
    assert len(cut.switches) == size and cut.whole == (size == 34)
    if changed == ["spine-02"]:
        [line] = out_of_scope(m, restrict(m, cut.names))
        assert line.startswith("spine-01 not in the slice: sessions leaf-01 ↔ spine-01,") and "and 26 more" in line
