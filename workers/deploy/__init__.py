"""Deploy, verify and rollback of the fabric: nornir + the napalm drivers, waves, commit-confirm.

Stages: :class:`~workers.deploy.deploy.DeployStage` (``deploy``),
:class:`~workers.deploy.verify.VerifyStage` (``verify``) and
:class:`~workers.deploy.rollback.RollbackStage` (``rollback``).
"""
