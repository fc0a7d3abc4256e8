"""Security scan of the infra repo: bandit over its Python, secret detection over everything.

Public API::

    from lintas.workers.secscan.scan import scan_repo          # blocking, no NATS
    from lintas.workers.secscan.stage import SecscanStage      # the ``secscan`` stage

A finding names a file and a line and never carries the secret it found.
"""
