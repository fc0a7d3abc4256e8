"""The one-``vtysh`` read of verification (issue 16): several JSON answers printed back to back."""

from __future__ import annotations

import pytest

from lintas.workers.drivers.frr.reads import json_docs


def test_back_to_back_documents_are_split_in_order() -> None:
    text = '{"default": {"a": 1}}\n{\n  "x": [1, 2]\n}\n[\n]\n{}'
    assert json_docs(text) == [{"default": {"a": 1}}, {"x": [1, 2]}, [], {}]


def test_a_command_that_prints_nothing_leaves_the_count_short() -> None:
    # what FRR prints for `show evpn vni json` on a switch without EVPN: nothing at all
    assert len(json_docs('{"a": 1}\n\n{"b": 2}\n')) == 2


def test_anything_but_json_is_refused() -> None:
    with pytest.raises(ValueError):
        json_docs('{"a": 1}\n% Unknown command: show evpn\n')


def test_the_pending_commit_sections_parse_as_get_pending_commit_answers() -> None:
    from lintas.workers.drivers.frr.reads import parse_pending
    from lintas.workers.drivers.frr.remote import parse_sections

    out = (
        "\n@@pstatus\npending\n\n@@pmarker\nck-1 1700000100\n\n@@pmeta\n"
        '{"id": "ck-1", "message": "lintas run r-1 abcd1234 (demo main)", "revert_in": 60}\n@@pnow\n1700000040\n'
    )
    got = parse_pending(parse_sections(out))
    assert got is not None and got["status"] == "pending" and got["checkpoint"] == "ck-1"
    assert got["message"].startswith("lintas run r-1") and got["seconds_left"] == 60 and got["revert_in"] == 60
    assert parse_pending(parse_sections("\n@@pstatus\nnone\n\n@@pmarker\n\n@@pmeta\n\n@@pnow\n1\n")) is None
