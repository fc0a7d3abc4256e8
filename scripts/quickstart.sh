#!/usr/bin/env bash
# README command 1: from a fresh machine to a push you can watch go through the pipeline.
#   - installs system packages and the venv (scripts/setup.sh)
#   - starts `lintas up` in the background: embedded nats-server, engine, workers
#   - creates the demo infra repo (demo-infra.git + working clone demo-infra/)
#   - commits "add VNI 10030", pushes, and follows the run's logs to its end
# Lintas keeps running afterwards; stop it with `.venv/bin/lintas down`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/setup.sh
export LINTAS_HOME="${LINTAS_HOME:-$PWD/.lintas-home}"
export PATH="$PWD/.venv/bin:$PATH"

lintas up --detach

if [ ! -d demo-infra ]; then
  lintas init demo-infra
fi
cd demo-infra
git config user.email >/dev/null || git config user.email "demo@lintas.invalid"
git config user.name >/dev/null || git config user.name "Lintas Demo"

if ! grep -q "vni: 10030" fabric/tenants.yaml; then
  cat >> fabric/tenants.yaml <<'YAML'

  - name: uat-db
    vrf: UAT
    vlan: 30
    vni: 10030
    gateway: 10.30.30.1/24
    mtu: 9000
    leaves: [leaf-01, leaf-02]
YAML
  git commit -qam "add VNI 10030"
else
  git commit -q --allow-empty -m "demo: re-run the pipeline"
fi
git push origin main
sha=$(git rev-parse HEAD)
run=""
for _ in $(seq 1 100); do
  run=$(lintas runs --json --limit 500 | python3 -c "import json,sys; print(next((r['run_id'] for r in json.load(sys.stdin) if r['sha']=='$sha'), ''))")
  [ -n "$run" ] && break
  sleep 0.2
done
[ -n "$run" ] || { echo "no run appeared for $sha; see $LINTAS_HOME/logs/" >&2; exit 1; }
echo
echo ">> following run $run"
lintas logs "$run" --follow
echo
lintas show "$run"
echo
echo "Lintas is still running (LINTAS_HOME=$LINTAS_HOME)."
echo "Try:  cd demo-infra && \$EDITOR fabric/tenants.yaml && git commit -am '...' && git push"
echo "      lintas runs | lintas show <run> | lintas logs <run> --follow      (PATH=$ROOT/.venv/bin:\$PATH)"
echo "Stop: lintas down"
lintas wait "$run" >/dev/null
