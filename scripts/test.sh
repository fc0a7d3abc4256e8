#!/usr/bin/env bash
# README command 2: set up from nothing and run every test (real nats-server, git, FRR, sshd,
# libvirtd, OVS, Chromium): ruff, mypy --strict, the whole pytest suite.
#
#   bash scripts/test.sh            everything (what CI runs)
#   bash scripts/test.sh --fast     the fast lane for your own loop: ruff and every test that starts
#                                   no server and no lab (`-m "not integration"`); sets up only
#                                   when .venv is missing
# Further arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fast" ]; then
  shift
  [ -x .venv/bin/lintas ] || bash scripts/setup.sh
  echo ">> ruff"
  .venv/bin/ruff check engine workers tests bench
  .venv/bin/ruff format --check engine workers tests bench
  echo ">> pytest (fast lane: not integration)"
  exec .venv/bin/python -m pytest -m "not integration" "$@"
fi
bash scripts/setup.sh
echo ">> ruff (lint, complexity, format)"
.venv/bin/ruff check engine workers tests bench
.venv/bin/ruff format --check engine workers tests bench
echo ">> mypy (strict on engine/ and workers/)"
.venv/bin/mypy
echo ">> pytest"
exec .venv/bin/python -m pytest --durations=15 "$@"
