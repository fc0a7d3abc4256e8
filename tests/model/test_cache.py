"""A ModelCache re-parses only changed files and never hides a problem."""

from __future__ import annotations

import pytest

from lintas.engine.errors import ModelError
from lintas.workers.model import ModelCache, load_model

from .conftest import TEMPLATE, Repo


def test_second_load_reuses_every_file_and_gives_the_same_model() -> None:
    cache = ModelCache()
    first = load_model(TEMPLATE, cache=cache)
    misses = cache.misses
    second = load_model(TEMPLATE, cache=cache)
    assert second == first
    assert cache.misses == misses and cache.hits >= misses


def test_changed_file_is_parsed_again(repo: Repo) -> None:
    cache = ModelCache()
    load_model(repo.root, cache=cache)
    misses = cache.misses
    repo.edit("fabric/tenants.yaml", "vlan: 20\n", "vlan: 21\n")
    model = load_model(repo.root, cache=cache)
    assert cache.misses == misses + 1
    assert model.networks["uat-app"].vlan == 21


def test_cached_schema_errors_are_reported_again(repo: Repo) -> None:
    cache = ModelCache()
    repo.edit("fabric/devices.yaml", "    id: 12\n", "    id: 12\n    colour: blue\n")
    for _ in range(2):
        with pytest.raises(ModelError) as exc:
            load_model(repo.root, cache=cache)
        assert [d.message for d in exc.value.diagnostics] == ["unknown key 'colour'"]
    assert cache.hits > 0


def test_semantic_checks_see_unchanged_files_against_changed_ones(repo: Repo) -> None:
    cache = ModelCache()
    load_model(repo.root, cache=cache)
    repo.edit("hosts/instances.yaml", "host: osc-01", "host: osc-09")
    with pytest.raises(ModelError) as exc:
        load_model(repo.root, cache=cache)
    assert [d.message for d in exc.value.diagnostics] == ["unknown host 'osc-09'"]


def test_cache_is_bounded() -> None:
    cache = ModelCache(max_documents=3)
    load_model(TEMPLATE, cache=cache)
    assert len(cache._docs) == 3
