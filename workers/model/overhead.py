"""Encapsulation overheads used by the MTU budget check.

Bytes added to an inner frame whose IP MTU is the overlay MTU (the inner
Ethernet header is counted, the outer one is not, as MTUs exclude L2 headers):

* VXLAN: outer IPv4 20 (IPv6 40) + UDP 8 + VXLAN 8 + inner Ethernet 14
  = **50** over IPv4, **70** over IPv6.
* Geneve as OVN uses it: outer IPv4 20 (IPv6 40) + UDP 8 + Geneve 8 + one
  8-byte OVN metadata option + inner Ethernet 14 = **58** over IPv4, **78** over
  IPv6. This is the figure neutron's ML2/OVN uses (``ovn_geneve_max_header_size``
  38 plus the IP header), so a 9000-byte uplink gives instances 8942 bytes, the
  value an OpenStack operator already knows. Plain OVS geneve ports without
  options need 8 bytes less; the larger value is used so that a host can move
  from plain geneve to OVN without shrinking instance MTUs.
"""

from __future__ import annotations

from typing import Literal

VXLAN: dict[int, int] = {4: 50, 6: 70}
GENEVE: dict[int, int] = {4: 58, 6: 78}


def overhead(encap: Literal["vxlan", "geneve"], ip_version: int) -> int:
    return (VXLAN if encap == "vxlan" else GENEVE)[ip_version]
