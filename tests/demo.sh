#!/usr/bin/env bash
# `make demo`: with no KUBECONFIG, start (or reuse) the local test bed; then run playbooks/demo.yml.
# A KUBECONFIG that is not the test bed's is refused unless DEMO_ON_MY_CLUSTER=yes: the demo writes to the
# cluster (demo-* namespaces and gateways, nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
if [ -z "${KUBECONFIG:-}" ]; then
  echo ">> no KUBECONFIG set: starting the local test bed (the first run builds it; later runs take seconds)"
  .venv/bin/python -m tests.testbed.testbed up
  eval "$(.venv/bin/python -m tests.testbed.testbed env)"
else
  case "$(realpath -m -- "$KUBECONFIG")" in
    "$(pwd -P)/.testbed/"*) ;; # a kubeconfig of this checkout's test bed
    *)
      if [ "${DEMO_ON_MY_CLUSTER:-}" != yes ]; then
        echo "make demo: KUBECONFIG=$KUBECONFIG is not this checkout's test bed, and the demo would write to" \
          "that cluster (namespaces demo-ingress, demo-payments and gateways in them)." >&2
        echo "Unset KUBECONFIG to run it on the local test bed, or set DEMO_ON_MY_CLUSTER=yes to run it on" \
          "that cluster." >&2
        exit 2
      fi
      ;;
  esac
fi
echo ">> running playbooks/demo.yml against $KUBECONFIG"
exec ansible-playbook playbooks/demo.yml \
  -e "demo_istioctl=${ISTIOCTL:-}" \
  -e "demo_canary_istioctl=${ISTIOCTL_CANARY:-}" \
  -e "demo_canary_revision=${DEMO_CANARY_REVISION:-${TESTBED_CANARY_REVISION:-}}"
