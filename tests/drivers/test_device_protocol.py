"""The driver boundary (workers/devices.py): the FRR driver implements ``DeviceDriver`` structurally,
and the Lintas extensions are read into their TypedDicts at the boundary (no lab needed)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from lintas.workers.deploy import ops
from lintas.workers.devices import DeviceDriver, DriverAnswerError, kernel_facts, pending_commit_info
from lintas.workers.drivers.frr.driver import FrrDriver


def _protocol_methods() -> list[str]:
    members = {n: v for cls in DeviceDriver.__mro__ if cls is not object for n, v in vars(cls).items()}
    return sorted(n for n, v in members.items() if inspect.isfunction(v) and not n.startswith("_"))


def _params(func: object) -> list[tuple[str, object, object]]:
    sig = inspect.signature(func)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def test_the_frr_driver_has_every_method_of_the_protocol_with_its_parameters() -> None:
    assert len(_protocol_methods()) >= 16
    for name in _protocol_methods():
        assert _params(getattr(FrrDriver, name)) == _params(getattr(DeviceDriver, name)), name


def test_the_deploy_operations_call_nothing_outside_the_protocol() -> None:
    """Every ``driver.<method>`` that workers/deploy/ops.py calls is declared by the protocol."""
    import ast

    tree = ast.parse(inspect.getsource(ops))
    called = {
        n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "driver"
    }
    assert called and called <= set(_protocol_methods())


class _Answers:
    def __init__(self, kernel: Any, pending: Any) -> None:
        self.kernel, self.pending = kernel, pending

    def get_kernel_facts(self) -> Any:
        return self.kernel

    def get_pending_commit(self) -> Any:
        return self.pending


def test_kernel_facts_are_typed_at_the_boundary() -> None:
    answer = {
        "mode": "vlan_aware",
        "capabilities": {
            "vrf": False,
            "vlan": True,
            "vlan_filtering": True,
            "vxlan": True,
            "kernel": "6.1",
            "mode": "vlan_aware",
        },
        "applied": {
            "mode": "vlan_aware",
            "unsupported_on_this_kernel": ["VRF devices"],
            "adaptations": [],
            "checkpoint": "ck-1",
            "message": "lintas run r-1 aaaaaaaa (infra main)",
            "committed_at": 1700000000,
        },
        "candidate": None,
    }
    facts = kernel_facts(_Answers(answer, None))  # type: ignore[arg-type]
    assert facts == answer
    applied = facts.get("applied")
    assert applied is not None and applied.get("checkpoint") == "ck-1"
    assert kernel_facts(_Answers({"applied": {"checkpoint": "c1"}}, None)) == {"applied": {"checkpoint": "c1"}}  # type: ignore[arg-type]
    with pytest.raises(DriverAnswerError, match=r"get_kernel_facts: .* at applied\.checkpoint"):
        kernel_facts(_Answers({"applied": {"checkpoint": ["not", "a", "token"]}}, None))  # type: ignore[arg-type]


def test_a_pending_commit_is_typed_at_the_boundary() -> None:
    assert pending_commit_info(_Answers({}, None)) is None  # type: ignore[arg-type]
    info = pending_commit_info(
        _Answers(
            {},
            {
                "status": "pending",
                "checkpoint": "c2",
                "message": "m",  # type: ignore[arg-type]
                "seconds_left": 33,
                "deadline": 1700000033,
            },
        )
    )
    assert info is not None and info["status"] == "pending" and info.get("seconds_left") == 33
    with pytest.raises(DriverAnswerError, match="get_pending_commit"):
        pending_commit_info(_Answers({}, {"checkpoint": "c2"}))  # type: ignore[arg-type]  # no status
