# Local Kubernetes + Istio test bed (see tests/testbed/README.md).
# Included by the top-level Makefile, which provides PYTHON and the `venv` target.

# Settings `up` reads from the environment (or as make variables, e.g. make testbed-up TESTBED_POD_READY=delayed):
#   TESTBED_POD_READY=delayed|instant   pods Ready after TESTBED_POD_READY_DELAY (default) or at once
#   TESTBED_POD_READY_DELAY=2s-6s       delay range of a delayed bed (default 2s-6s; "3s" is fixed)
#   TESTBED_API_LATENCY_MS=25           latency kubeconfig-slow adds to every API response
# and which cluster every target works on:
#   TESTBED_CLUSTER=cluster-1           the primary in .testbed/ (default); other names live in .testbed/clusters/NAME/.
#                                       Unset, testbed-down and testbed-status cover every cluster.
# A make variable of testbed-up alone:
#   CLUSTERS=3                          cluster-1..3, each a bed of its own, and .testbed/inventory.yml

PYTHON ?= .venv/bin/python
TESTBED := $(PYTHON) -m tests.testbed.testbed

.PHONY: testbed-build testbed-up testbed-down testbed-env testbed-status

testbed-build: venv  ## build the pinned kube/etcd/kwok/istio binaries into the cache
	$(TESTBED) build

testbed-up: venv  ## start the bed (builds first if needed); reuses a healthy bed
	$(TESTBED) up $(if $(CLUSTERS),--clusters $(CLUSTERS))

testbed-down: venv  ## stop exactly what testbed-up started
	$(TESTBED) down

testbed-env: venv  ## eval "$(make -s testbed-env)"
	@$(TESTBED) env

testbed-status: venv
	@$(TESTBED) status
