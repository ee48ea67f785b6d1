#!/usr/bin/env bash
# `make demo`: with no KUBECONFIG, start (or reuse) the local test bed; then run playbooks/demo.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
if [ -z "${KUBECONFIG:-}" ]; then
  echo ">> no KUBECONFIG set: starting the local test bed (the first run builds it; later runs take seconds)"
  .venv/bin/python -m tests.testbed.testbed up
  eval "$(.venv/bin/python -m tests.testbed.testbed env)"
fi
echo ">> running playbooks/demo.yml against $KUBECONFIG"
exec ansible-playbook playbooks/demo.yml \
  -e "demo_istioctl=${ISTIOCTL:-}" \
  -e "demo_canary_istioctl=${ISTIOCTL_CANARY:-}" \
  -e "demo_canary_revision=${DEMO_CANARY_REVISION:-${TESTBED_CANARY_REVISION:-}}"
