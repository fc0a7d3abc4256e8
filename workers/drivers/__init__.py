"""Device drivers: napalm ``NetworkDriver`` implementations Lintas deploys through.

* :mod:`workers.drivers.frr`: Linux + FRR switches (SONiC/Cumulus style) over SSH,
  with a device-side commit-confirm timer.

Drivers follow napalm's lifecycle (load candidate, compare, commit with ``revert_in``,
confirm, discard, rollback) so nornir uses them through ``nornir_napalm`` like any
other napalm driver. Each declares its capabilities in ``CAPABILITIES``; a pipeline
checks them before relying on commit-confirm or replace.
"""
