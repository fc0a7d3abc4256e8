"""napalm driver ``frr``: Linux + FRR switches (SONiC/Cumulus style) over SSH.

See :mod:`workers.drivers.frr.driver` for the API (``FrrDriver``),
:mod:`workers.drivers.frr.errors` for its exceptions, :mod:`workers.drivers.frr.candidate` for
the candidate format (with :mod:`~workers.drivers.frr.linux_schema`, the ``linux.json`` schema,
and :mod:`~workers.drivers.frr.secret_tokens`, the secret placeholders) and
:mod:`workers.drivers.frr.revert` for the device-side checkpoint and commit-confirm timer.

This package imports nothing: the renderer reads the candidate format from here without
loading the driver, and the driver stands alone (it imports nothing of Lintas but
``engine.errors`` and ``engine.redact``; napalm finds it as ``napalm_frr``).
"""
