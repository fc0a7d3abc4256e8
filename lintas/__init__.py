"""Lintas: git push -> NATS JetStream -> validated, policy-checked, verified, reversible
infrastructure changes.

The distribution installs this one import package. In the repository its members are links to the
top-level folders (``engine/``, ``workers/``, ``pipelines/``, ``policies/``, ``gitops-repo-template/``
as ``template``); in a wheel they are real folders, so code finds its data the same way in both
(``lintas.engine.resources``)."""
