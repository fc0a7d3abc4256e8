"""How workers reach targets, shared by the fabric (:mod:`workers.deploy`) and the hosts
(:mod:`workers.hosts`) without either importing the other:

- :mod:`workers.reach.allowlist`: :class:`~workers.reach.allowlist.ConnectError` and the
  management-address allow-list (``deploy.allowed_networks``), checked before any packet;
- :mod:`workers.reach.credentials`: where a target's login comes from (typed credential
  sources: the configured ones, and a lab's own for the targets it built);
- :mod:`workers.reach.netns`: a socket connected from inside a network namespace (a twin's
  management network), for targets whose :class:`~workers.reach.credentials.Target` names one.
"""
