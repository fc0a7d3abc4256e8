"""napalm's lookup name for the Lintas FRR driver: ``get_network_driver("frr")`` and nornir's
``platform: frr`` import ``napalm_frr`` (napalm's community-driver convention)."""

from lintas.workers.drivers.frr.driver import FrrDriver

__all__ = ["FrrDriver"]
