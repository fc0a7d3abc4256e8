"""Property tests: pool derivation and overlap detection."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from lintas.workers.model import load_model_texts
from lintas.workers.model.loader import MODEL_FILES
from lintas.workers.model.overlap import find_overlaps
from lintas.workers.model.pools import nth_address, nth_asn, nth_p2p, p2p_blocks, usable_addresses
from lintas.workers.model.primitives import IPNetwork
from lintas.workers.model.schema_fabric import AsnRange

from .conftest import TEMPLATE

TEXTS = {rel: (TEMPLATE / rel).read_text() for rel in MODEL_FILES}


@st.composite
def pools(draw: st.DrawFn) -> IPNetwork:
    if draw(st.booleans()):
        plen = draw(st.integers(20, 32))
        addr = draw(st.integers(0, 2**32 - 1))
        return ipaddress.ip_network((addr, plen), strict=False)
    plen = draw(st.integers(112, 128))
    addr = draw(st.integers(0, 2**128 - 1))
    return ipaddress.ip_network((addr, plen), strict=False)


@given(pool=pools(), ids=st.lists(st.integers(1, 5000), unique=True, max_size=60))
def test_addresses_are_unique_inside_the_pool_and_deterministic(pool: IPNetwork, ids: list[int]) -> None:
    usable = usable_addresses(pool)
    got = {n: nth_address(pool, n) for n in ids}
    assert got == {n: nth_address(pool, n) for n in ids}  # deterministic
    given_out = [a for a in got.values() if a is not None]
    assert len(set(given_out)) == len(given_out)  # unique
    for n, addr in got.items():
        if n > usable:
            assert addr is None  # exhaustion is reported, never wraps around
            continue
        assert addr is not None and addr in pool
        assert addr != pool.network_address
        if pool.version == 4 and pool.prefixlen <= 30:
            assert addr != pool.broadcast_address
        assert int(addr) - int(pool.network_address) == n  # pool start + id


@given(pool=pools(), blocks=st.lists(st.integers(0, 5000), unique=True, max_size=60))
def test_p2p_subnets_are_disjoint_and_inside_the_pool(pool: IPNetwork, blocks: list[int]) -> None:
    subnets = [s for s in (nth_p2p(pool, b) for b in blocks) if s is not None]
    assert len(subnets) == sum(1 for b in blocks if b < p2p_blocks(pool))
    for s in subnets:
        assert s.prefixlen == s.max_prefixlen - 1 and s.subnet_of(pool)  # type: ignore[arg-type]
    for a, b in itertools.combinations(subnets, 2):
        assert not a.overlaps(b)
    assert [nth_p2p(pool, b) for b in blocks] == [nth_p2p(pool, b) for b in blocks]


@given(first=st.integers(1, 4_000_000_000), size=st.integers(0, 500), ids=st.lists(st.integers(1, 600), unique=True))
def test_asns_are_unique_and_inside_the_range(first: int, size: int, ids: list[int]) -> None:
    r = AsnRange(first=first, last=first + size)
    asns = {n: nth_asn(r, n) for n in ids}
    assigned = [a for a in asns.values() if a is not None]
    assert len(set(assigned)) == len(assigned)
    for n, asn in asns.items():
        assert (asn is None) == (n > size)
        if asn is not None:
            assert r.first < asn <= r.last and asn == r.first + n


@settings(max_examples=25, deadline=None)
@given(ids=st.lists(st.integers(3, 99), min_size=4, max_size=4, unique=True))
def test_derived_model_values_are_unique_and_from_the_pools(ids: list[int]) -> None:
    texts = dict(TEXTS)
    devices = texts["fabric/devices.yaml"]
    for old in (11, 12, 13, 14):
        devices = devices.replace(f"    id: {old}\n", f"    id: @{old}\n")
    for old, new in zip((11, 12, 13, 14), ids, strict=True):
        devices = devices.replace(f"    id: @{old}\n", f"    id: {new}\n")
    texts["fabric/devices.yaml"] = devices
    model = load_model_texts(texts)
    assert load_model_texts(texts) == model  # deterministic
    pools = model.fabric.pools
    leaves = model.leaves
    assert sorted(d.id for d in leaves) == sorted(ids)
    for values, pool in (([d.loopback for d in leaves], pools.loopbacks), ([d.vtep for d in leaves], pools.vteps)):
        assert len(set(values)) == len(values) and all(v in pool for v in values)
    asns = [d.asn for d in leaves]
    assert len(set(asns)) == 4 and all(d.asn == 65100 + d.id for d in leaves)
    subnets = [link.subnet for link in model.links]
    assert len(set(subnets)) == len(subnets) and all(s.subnet_of(pools.p2p) for s in subnets)  # type: ignore[arg-type]


@st.composite
def networks(draw: st.DrawFn) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for _ in range(draw(st.integers(0, 25))):
        if draw(st.integers(0, 5)) == 0:
            out.append(
                ipaddress.ip_network(
                    (draw(st.integers(0, 2**16 - 1)) << 112, draw(st.integers(100, 128))), strict=False
                )
            )
        else:
            # a small space so that overlaps are common
            addr = (10 << 24) + draw(st.integers(0, 2**12 - 1))
            out.append(ipaddress.ip_network((addr, draw(st.integers(20, 32))), strict=False))
    return out


@given(nets=networks())
def test_overlap_detection_agrees_with_brute_force(nets: list[IPNetwork]) -> None:
    pairs = find_overlaps(nets)
    brute = {
        i
        for i, j in itertools.permutations(range(len(nets)), 2)
        if nets[i].version == nets[j].version and nets[i].overlaps(nets[j])
    }
    for i, j in pairs:
        assert i != j and nets[i].overlaps(nets[j])
    assert {k for pair in pairs for k in pair} == brute
    assert len({j for _i, j in pairs}) == len(pairs)  # each network reported once
