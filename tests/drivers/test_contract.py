"""The FRR driver against napalm's contract: signatures, lookup by name, declared capabilities."""

from __future__ import annotations

import inspect

import pytest
from napalm import get_network_driver
from napalm.base import NetworkDriver
from napalm.base import exceptions as nx

from lintas.engine.errors import PermanentError, RetryableError
from lintas.workers.drivers.frr import errors as fe
from lintas.workers.drivers.frr.driver import FrrDriver

EXTRA_METHODS = {
    "get_evpn_peers",
    "get_evpn_vnis",
    "get_evpn_macs",
    "get_kernel_facts",
    "get_ipv4_routes",
    "ping_df",
    "get_pending_commit",
    "get_fabric_state",
    "ping_many",
    "get_running_and_pending",
}  # verify's and drift's one-exec reads
IMPLEMENTED = {
    "open",
    "close",
    "is_alive",
    "load_replace_candidate",
    "load_merge_candidate",
    "compare_config",
    "commit_config",
    "confirm_commit",
    "has_pending_commit",
    "discard_config",
    "rollback",
    "get_facts",
    "get_interfaces",
    "get_interfaces_ip",
    "get_bgp_neighbors",
    "get_config",
    "cli",
    "ping",
}


def _params(func: object) -> list[tuple[str, object, object]]:
    """Names, kinds and defaults: annotations are left out (import paths differ)."""
    sig = inspect.signature(func)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_every_public_method_has_napalms_signature() -> None:
    extras = set()
    for name, member in inspect.getmembers(FrrDriver, inspect.isfunction):
        if name.startswith("_") and name != "__init__":
            continue
        base = getattr(NetworkDriver, name, None)
        if base is None:
            extras.add(name)
            continue
        assert _params(member) == _params(base), f"{name}: {inspect.signature(member)} != {inspect.signature(base)}"
    assert extras == EXTRA_METHODS


def test_lifecycle_and_getters_are_implemented_not_inherited() -> None:
    own = {name for cls in FrrDriver.__mro__ if cls is not NetworkDriver and cls is not object for name in vars(cls)}
    assert own >= IMPLEMENTED, sorted(IMPLEMENTED - own)
    assert {"replace", "merge", "commit_confirm", "device_side_revert", "rollback"} <= FrrDriver.CAPABILITIES


def test_constructor_accepts_napalm_and_nornir_arguments() -> None:
    d = FrrDriver("198.51.100.1", "root", "", optional_args={"ssh_config_file": "~/.ssh/config", "port": 2222})
    assert d.port == 2222 and d.is_alive() == {"is_alive": False}
    with pytest.raises(fe.FrrCandidateError, match="always checks host keys"):
        FrrDriver("198.51.100.1", "root", "", optional_args={"strict_host_key_checking": False})
    with pytest.raises(fe.FrrCandidateError, match="revert_dir"):
        FrrDriver("198.51.100.1", "root", "", optional_args={"revert_dir": "/etc/frr/x; rm -rf /"})


def test_errors_are_napalm_exceptions_with_a_disposition() -> None:
    assert issubclass(fe.FrrHostKeyError, nx.ConnectionException) and issubclass(fe.FrrHostKeyError, PermanentError)
    assert issubclass(fe.FrrConnectionError, nx.ConnectionException) and issubclass(
        fe.FrrConnectionError, RetryableError
    )
    assert issubclass(fe.FrrCandidateError, nx.ReplaceConfigException)
    assert issubclass(fe.FrrMergeError, nx.MergeConfigException)
    assert issubclass(fe.FrrCommitError, nx.CommitError)
    assert issubclass(fe.FrrCommitConfirmError, nx.CommitConfirmException)


def test_platform_frr_resolves_to_the_driver() -> None:
    # the installed napalm_frr shim (pyproject py-modules): napalm's lookup for platform "frr"
    assert get_network_driver("frr") is FrrDriver
