"""The fabric generator produces valid repos of any size (used by the benchmarks)."""

from __future__ import annotations

import pytest

from lintas.workers.model import affected_targets, load_model_texts
from lintas.workers.model.generate import generate_fabric


def test_small_generated_fabric_validates_like_the_template() -> None:
    files = generate_fabric(4, n_spines=2, vnis_per_leaf=2, n_hosts=2, n_instances=4)
    model = load_model_texts(files)
    assert (len(model.spines), len(model.leaves), len(model.links)) == (2, 4, 8)
    assert {h.kind for h in model.hosts.values()} == {"kvm", "openstack"}
    assert len(model.instances) == 4
    assert all(len(model.networks_by_leaf[leaf.name]) == 3 for leaf in model.leaves)  # 2 + the tunnel network


def test_generator_is_deterministic() -> None:
    assert generate_fabric(8, n_hosts=4, n_instances=8) == generate_fabric(8, n_hosts=4, n_instances=8)


def test_fabric_without_hosts() -> None:
    model = load_model_texts(generate_fabric(3, n_spines=4, vnis_per_leaf=0))
    assert (len(model.spines), len(model.leaves), len(model.links), len(model.networks)) == (4, 3, 12, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_leaves": 0},
        {"n_leaves": 2, "n_spines": 0},
        {"n_leaves": 1, "n_hosts": 49},
        {"n_leaves": 2, "n_instances": 3},
    ],
)
def test_generator_rejects_impossible_shapes(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        generate_fabric(**kwargs)


def test_benchmark_scale_fabric_validates() -> None:
    """2 spines + 1000 leaves x 20 VNIs + 200 hosts + 2000 instances (timing is for bench/)."""
    files = generate_fabric(1000, n_spines=2, vnis_per_leaf=20, n_hosts=200, n_instances=2000)
    model = load_model_texts(files)
    assert (len(model.spines), len(model.leaves), len(model.hosts), len(model.instances)) == (2, 1000, 200, 2000)
    assert len(model.links) == 2000
    assert all(len(model.networks_by_leaf[leaf.name]) == 21 for leaf in model.leaves)
    assert len({d.asn for d in model.leaves}) == 1000

    # changing one leaf re-renders that leaf only: far below 1 % of the targets
    name = "net-10"
    text = files["fabric/tenants.yaml"]
    start = text.index(f"- name: {name}\n")
    end = text.index("- name:", start + 1)
    block = text[start:end]
    changed = block.replace("leaves: [leaf-0001,", "leaves: [leaf-0001, leaf-0999,", 1)
    assert changed != block
    new = load_model_texts({**files, "fabric/tenants.yaml": text[:start] + changed + text[end:]})
    affected = affected_targets(model, new)
    assert affected == {"leaf-0999"}
    assert len(affected) <= 0.01 * len(new.targets)
