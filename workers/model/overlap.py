"""Overlap and duplicate detection in O(n log n): sort once, sweep once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from lintas.workers.model.primitives import IPNetwork

T = TypeVar("T")


def find_overlaps(networks: Sequence[IPNetwork]) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of indexes into ``networks`` such that ``networks[j]``
    overlaps ``networks[i]``.

    Every network that overlaps any other appears in at least one pair (prefixes
    nest or are disjoint, so the earlier prefix with the furthest end is the one
    that contains the later ones), and every pair overlaps. Each network is
    reported once, paired with the widest earlier prefix that contains it.
    """
    pairs: list[tuple[int, int]] = []
    for version in (4, 6):
        order = sorted((int(n.network_address), n.prefixlen, i) for i, n in enumerate(networks) if n.version == version)
        best_end, best = -1, -1
        for start, _plen, i in order:
            end = int(networks[i].broadcast_address)
            if start <= best_end:
                pairs.append((best, i))
            if end > best_end:
                best_end, best = end, i
    return pairs
