"""Policy as code: the ``policy`` stage evaluates Rego over the validated model and the change.

Public API::

    from lintas.workers.policy.engine import PolicyEngine, Decision, make_engine
    from lintas.workers.policy.input import build_input
    from lintas.workers.policy.stage import PolicyStage

This package must stay cheap to import: :mod:`workers.policy.sandbox` runs as a
stand-alone script in a child process and imports nothing from Lintas.
"""
