"""The management-address allow-list: nothing is contacted outside ``deploy.allowed_networks``."""

from __future__ import annotations

import ipaddress

from lintas.engine.errors import LintasError
from lintas.engine.settings import Settings


class ConnectError(LintasError):
    """A target cannot be connected to under the operator's rules (no packet was sent)."""


def check_address(target: str, address: str, settings: Settings) -> None:
    """Refuse ``address`` unless it lies in one of ``deploy.allowed_networks``."""
    ip = ipaddress.ip_address(address)
    nets = [ipaddress.ip_network(n, strict=False) for n in settings.deploy.allowed_networks]
    if not any(ip in n for n in nets):
        raise ConnectError(
            f"{target}: management address {address} is outside the allowed networks "
            f"{', '.join(map(str, nets))} (LINTAS_DEPLOY__ALLOWED_NETWORKS): refused"
        )


def literal_address(host: str, target: str) -> str:
    """``host`` as an IP address; a name is refused (names are not resolved, so the allow-list
    check cannot be bypassed)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        raise ConnectError(
            f"{target}: {host!r} is not an IP address: hosts are reached by management address "
            "(names are not resolved, so the allow-list check cannot be bypassed)"
        ) from None
