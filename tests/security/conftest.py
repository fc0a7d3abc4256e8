"""Hostile-input suite (issue 13): fixtures shared with the API tests, and a child-process
probe that measures time and peak memory of whatever handled an attack."""

from __future__ import annotations

from tests.api.conftest import bus, make_api  # noqa: F401  (fixtures, re-exported)
