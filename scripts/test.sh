#!/usr/bin/env bash
# README command 2: set up from nothing and run every test (real nats-server, git, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo ">> ruff"
.venv/bin/ruff check engine workers tests bench
echo ">> mypy (strict on engine/)"
.venv/bin/mypy
echo ">> pytest"
exec .venv/bin/python -m pytest "$@"
