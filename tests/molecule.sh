#!/usr/bin/env bash
# Molecule scenarios (extensions/molecule/*) against the local test bed, or $KUBECONFIG's cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
if [ -z "${KUBECONFIG:-}" ]; then
  echo ">> starting (or reusing) the local test bed for Molecule"
  .venv/bin/python -m tests.testbed.testbed up --user $$
  # Stopped at the end when this run started it and no test session uses it, unless TESTBED_KEEP=1 (a failed
  # release must not fail a run whose scenarios passed).
  trap '.venv/bin/python -m tests.testbed.testbed release --user $$ $([ "${TESTBED_KEEP:-}" = 1 ] && echo --keep) || true' EXIT
  eval "$(.venv/bin/python -m tests.testbed.testbed env)"
fi
export KUBECONFIG ISTIOCTL ISTIOCTL_CANARY TESTBED_CANARY_REVISION
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  mapfile -t scenarios < <(find extensions/molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
fi
for scenario in "${scenarios[@]}"; do
  echo ">> molecule test -s ${scenario}"
  .venv/bin/molecule test -s "${scenario}"
done
echo ">> molecule: ${#scenarios[@]} scenarios passed"
