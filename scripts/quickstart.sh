#!/usr/bin/env bash
# README command 1: from a fresh machine to a push you can watch go through the pipeline.
#   - installs system packages and the venv (scripts/setup.sh)
#   - builds the lab: 2 spines + 4 leaves (FRR + sshd in network namespaces, needs root) and two
#     hypervisor hosts (libvirtd + QEMU, Open vSwitch; one plain KVM, one OpenStack compute
#     whose domains a nova fixture owns)
#   - starts `lintas up` in the background: embedded nats-server, engine, workers, API + dashboard
#   - creates the demo infra repo (demo-infra.git + working clone demo-infra/); its first
#     commit is the first deploy of the fabric and the hosts (policy asks for approval: this script approves)
#   - commits "add VNI 10030", pushes, and follows the run (deploy, verify) to its end
# Lintas and the lab keep running afterwards; stop them with `lintas down` and `lintas lab down`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
bash scripts/setup.sh
export LINTAS_HOME="${LINTAS_HOME:-$PWD/.lintas-home}"
export PATH="$PWD/.venv/bin:$PATH"

# the BGP password the template's configs reference (env:FABRIC_BGP_PASSWORD); never in git
mkdir -p "$LINTAS_HOME/secrets" && chmod 700 "$LINTAS_HOME/secrets"
[ -s "$LINTAS_HOME/secrets/fabric_bgp_password" ] || \
  python3 -c "import secrets; print('Lx-' + secrets.token_hex(12))" > "$LINTAS_HOME/secrets/fabric_bgp_password"
FABRIC_BGP_PASSWORD="$(cat "$LINTAS_HOME/secrets/fabric_bgp_password")"
export FABRIC_BGP_PASSWORD

lintas lab up
lintas down >/dev/null 2>&1 || true   # a Lintas started earlier without the password: restart it
lintas up --detach

# run_of SHA: the newest run of that commit
run_of() {
  local run=""
  for _ in $(seq 1 150); do
    run=$(lintas runs --json --limit 500 | python3 -c "import json,sys; print(next((r['run_id'] for r in json.load(sys.stdin) if r['sha']=='$1'), ''))")
    [ -n "$run" ] && { echo "$run"; return 0; }
    sleep 0.2
  done
  echo "no run appeared for $1; see $LINTAS_HOME/logs/" >&2; return 1
}
# drive RUN: follow it; approve it (as the operator) when a policy asks for approval
drive() {
  local run=$1 state
  echo; echo ">> following run $run"
  for _ in $(seq 1 600); do
    state=$(lintas show "$run" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['state'])")
    case $state in
      waiting_approval)
        lintas show "$run" --json | python3 -c "import json,sys; [print('   policy asks for approval:', r) for r in json.load(sys.stdin)['approval_reasons']]"
        echo "   approving as the operator: lintas approve $run"
        lintas approve "$run" >/dev/null; break;;
      succeeded|failed|rolled_back|canceled|superseded) break;;
    esac
    sleep 0.5
  done
  lintas logs "$run" --follow | grep -vE '^\s+[-+@ ]|^\s*$' || true
  echo; lintas show "$run" | head -40 || true   # (head closes the pipe early: not an error)
}

if [ ! -d demo-infra ]; then
  lintas init demo-infra
  drive "$(run_of "$(git -C demo-infra rev-parse HEAD)")"   # the first deploy of the fabric
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
run=$(run_of "$(git rev-parse HEAD)")
drive "$run"
echo
echo "Lintas is still running (LINTAS_HOME=$LINTAS_HOME), and so is the lab (lintas lab status)."
echo "Dashboard: http://${LINTAS_API_ADDR:-127.0.0.1:8700}/   (read with a token, or LINTAS_API_ANONYMOUS_READ=true)"
echo "Try:  cd demo-infra && \$EDITOR fabric/tenants.yaml && git commit -am '...' && git push"
echo "      lintas runs | lintas show <run> | lintas logs <run> --follow      (PATH=$ROOT/.venv/bin:\$PATH)"
echo "Stop: lintas down && lintas lab down"
lintas wait "$run" >/dev/null
