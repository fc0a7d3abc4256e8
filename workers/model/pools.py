"""Pool arithmetic for derived values: value = pool start + node id.

``10.250.0.0/24`` and id 11 give ``10.250.0.11``; ASN range ``65100-65199`` and
id 11 give ``65111``; the p2p pool is cut into /31 (IPv6: /127) blocks and a
leaf with id 11 and ``p2p_per_leaf`` 2 owns blocks 22 and 23. Index 0 (the
network address, the first ASN of the range) is never handed out, and for IPv4
pools of /30 and larger neither is the broadcast address. Allocation depends
only on the id, never on the order of files, so adding a device never moves
another device's addresses.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from lintas.workers.model.primitives import IPAddress, IPNetwork
from lintas.workers.model.schema_fabric import AsnRange


def usable_addresses(pool: IPNetwork) -> int:
    """How many ids a pool can serve (ids 1..n)."""
    if pool.version == 4 and pool.prefixlen <= 30:
        return pool.num_addresses - 2
    return pool.num_addresses - 1


def nth_address(pool: IPNetwork, n: int) -> IPAddress | None:
    """Address number ``n`` (1-based) of ``pool``, or None when the pool is exhausted."""
    if 1 <= n <= usable_addresses(pool):
        return pool.network_address + n
    return None


def p2p_prefixlen(pool: IPNetwork) -> int:
    return pool.max_prefixlen - 1


def p2p_blocks(pool: IPNetwork) -> int:
    """How many /31 (IPv6 /127) subnets a p2p pool holds."""
    return pool.num_addresses // 2


@lru_cache(maxsize=1 << 16)
def nth_p2p(pool: IPNetwork, n: int) -> IPNetwork | None:
    """Subnet number ``n`` (0-based) of a p2p pool, or None when the pool is exhausted."""
    if 0 <= n < p2p_blocks(pool):
        return ipaddress.ip_network((int(pool.network_address) + 2 * n, p2p_prefixlen(pool)))
    return None


def asn_count(r: AsnRange) -> int:
    return r.last - r.first


def nth_asn(r: AsnRange, n: int) -> int | None:
    """ASN for id ``n``: ``first + n``, or None when the range is exhausted."""
    if 1 <= n <= asn_count(r):
        return r.first + n
    return None
