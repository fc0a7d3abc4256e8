"""Hypervisor hosts: Open vSwitch / OVN host networking over OVSDB, libvirt domains, the Linux side.

- :mod:`workers.hosts.ovsdb`: read, compare and converge a host's OVSDB (ovsdbapp) in one
  transaction, against the rendered ``ovs.json``;
- :mod:`workers.hosts.domains`: the libvirt domains of a host (define/redefine by semantic
  compare, start/stop, gated undefine), read-only on nova-managed hosts;
- :mod:`workers.hosts.linux`: the tunnel endpoint addresses on OVS internal ports (SSH);
- :mod:`workers.hosts.connect`: how to reach a host (libvirt URI, OVSDB target, SSH);
- :mod:`workers.hosts.ops`: apply / verify / restore / drift of one host, used by the
  deploy, verify, rollback stages and ``lintas drift``.
"""
