# Local Kubernetes + Istio test bed (see tests/testbed/README.md).
# Included by the top-level Makefile, which provides PYTHON and the `venv` target.

PYTHON ?= .venv/bin/python
TESTBED := $(PYTHON) -m tests.testbed.testbed

.PHONY: testbed-build testbed-up testbed-down testbed-env testbed-status

testbed-build: venv  ## build the pinned kube/etcd/kwok/istio binaries into the cache
	$(TESTBED) build

testbed-up: venv  ## start the bed (builds first if needed); reuses a healthy bed
	$(TESTBED) up

testbed-down: venv  ## stop exactly what testbed-up started
	$(TESTBED) down

testbed-env: venv  ## eval "$(make -s testbed-env)"
	@$(TESTBED) env

testbed-status: venv
	@$(TESTBED) status
