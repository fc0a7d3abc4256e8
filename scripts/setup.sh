#!/usr/bin/env bash
# Install everything Lintas and its tests need on a fresh Debian 12 machine:
# system packages (apt) and the Python virtualenv at .venv with Lintas installed editable.
set -euo pipefail
cd "$(dirname "$0")/.."

# git: repos and hooks; gcc + pkg-config + libvirt-dev: build libvirt-python;
# frr + frr-pythontools: FRR itself checks rendered configs (vtysh --dryrun, frr-reload.py).
# openssh-server/-client, iproute2, iputils-ping, procps: the lab (netns switches reached over SSH).
# chromium: the dashboard's browser test (driven by Playwright with executable_path, no browser download).
# libvirt-daemon-system, qemu-system-x86, openvswitch-switch: the lab's hypervisor hosts (libvirtd + QEMU
# and OVS started by the lab in each host's namespaces; the packages' own services are not used).
APT_PACKAGES=(git ca-certificates python3-venv gcc pkg-config libvirt-dev frr frr-pythontools
              openssh-server openssh-client iproute2 iputils-ping procps chromium
              libvirt-daemon-system qemu-system-x86 openvswitch-switch)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo ">> apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo ">> creating .venv with $($PY --version)"
  $PY -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
echo ">> pip install -e .[test]"
.venv/bin/python -m pip install -q -e '.[test]' 2>&1 | grep -vE "^WARNING: Location|^\s*$" || true
.venv/bin/lintas --help >/dev/null
echo ">> setup done: $(.venv/bin/python --version), lintas at .venv/bin/lintas"
