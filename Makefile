# istio_ops.gateways: every entry point a developer, CI or a user needs.
# `make demo` and `make test` work on a fresh machine: they build what they need.

SHELL := /bin/bash
PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
BUILD := .build
COLLECTIONS := $(BUILD)/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/istio_ops/gateways
SANITY_ROOT := $(BUILD)/sanity/ansible_collections/istio_ops/gateways
SANITY_VENV := $(VENV)-sanity
export ANSIBLE_COLLECTIONS_PATH := $(abspath $(COLLECTIONS))
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export ANSIBLE_NOCOLOR := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

-include tests/testbed/testbed.mk

.PHONY: help venv collection peers unit sanity lint changelog-lint packaging chromium browser integration molecule test demo bench clean

help:
	@echo "make demo        run the demo job on the local test bed (\$$KUBECONFIG's cluster only with DEMO_ON_MY_CLUSTER=yes)"
	@echo "make test        unit, sanity, lint, integration and Molecule tests"
	@echo "make unit | sanity | lint | integration (or its halves integration-1, -2) | reliability | suites (all at once) | molecule"
	@echo "make browser     the fleet report's HTML page in headless Chromium (installs Debian's chromium if missing)"
	@echo "make peers       kubernetes.core (from the pinned ansible package) beside this collection in $(COLLECTIONS)"
	@echo "make testbed-up | testbed-down | testbed-env | testbed-build"

venv: $(VENV_STAMP)
$(VENV_STAMP): requirements.txt requirements-dev.txt
	@echo ">> creating $(VENV) (ansible-core, kubernetes, pytest, molecule, ansible-lint)"
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	@touch $@

# ansible-test installs its sanity tools' pinned requirements; a venv of their own keeps them from
# clashing with ansible-lint's. (ansible-test --venv would fetch pip from a host CI cannot reach.)
$(SANITY_VENV)/.installed: requirements-dev.txt
	@echo ">> creating $(SANITY_VENV) for ansible-test sanity"
	$(PYTHON_BOOTSTRAP) -m venv $(SANITY_VENV)
	$(SANITY_VENV)/bin/pip install --quiet --upgrade pip
	$(SANITY_VENV)/bin/pip install --quiet $$(grep -E '^(ansible-core|kubernetes|PyYAML)==' requirements-dev.txt)
	@touch $@

# Ansible finds the collection through a link, so the checkout itself is what runs.
collection: $(COLLECTION_LINK)
$(COLLECTION_LINK):
	@mkdir -p $(dir $@)
	@ln -sfn $(abspath .) $@

# Peer collections the tests and the benchmark compare with, linked from a cache (tests/peers/pins.txt).
peers: venv collection
	$(PYTHON) -m tests.peers.install

unit: venv collection
	$(PYTHON) -m pytest -q tests/unit

# ansible-test wants the collection under ansible_collections/NS/NAME: copy what git tracks into a
# repository of its own (ansible-test lists targets with git, and .build/ is ignored here).
sanity: $(SANITY_VENV)/.installed
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_ROOT)
	@git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t $(SANITY_ROOT)/
	@cd $(SANITY_ROOT) && git init -q && git add -A
	@pip_version=$$(grep -oE "pip='[0-9.]+'" $(SANITY_VENV)/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | grep -oE "[0-9.]+" | tr . _); \
	  mkdir -p ~/.ansible/test/cache && cp tests/sanity/get_pip_offline.py ~/.ansible/test/cache/get_pip_$${pip_version}.py
	cd $(SANITY_ROOT) && $(abspath $(SANITY_VENV))/bin/ansible-test sanity --requirements --python 3.11 --color no

lint: venv collection changelog-lint
	$(VENV)/bin/ruff check plugins tests
	$(VENV)/bin/ruff format --check plugins tests
	$(VENV)/bin/ansible-lint --profile production roles playbooks

changelog-lint: venv
	$(VENV)/bin/antsibull-changelog lint

# The Galaxy tarball (contents, install, modules run from it) and the execution environment's build context.
packaging: venv collection
	$(PYTHON) -m pytest -q tests/packaging

# Debian's chromium renders the fleet report's HTML page headless (tests/browser; a screenshot in .artifacts/).
# Installed when missing (as root, or through sudo); a machine where it cannot be installed fails here, never skips.
CHROMIUM ?= /usr/bin/chromium
APT_GET = $$([ "$$(id -u)" = 0 ] || echo sudo) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600
chromium:
	@if [ -x $(CHROMIUM) ]; then echo ">> $$($(CHROMIUM) --version 2>/dev/null) at $(CHROMIUM)"; exit 0; fi; \
	  echo ">> $(CHROMIUM) missing: apt-get install -y --no-install-recommends chromium (some minutes)"; \
	  $(APT_GET) install -y --no-install-recommends chromium \
	    || { echo ">> apt-get update, then again"; $(APT_GET) update && $(APT_GET) install -y --no-install-recommends chromium; } \
	    || { echo ">> could not install chromium: the browser test cannot run" >&2; exit 1; }; \
	  [ -x $(CHROMIUM) ] || { echo ">> chromium installed but $(CHROMIUM) is missing" >&2; exit 1; }; \
	  echo ">> installed $$($(CHROMIUM) --version 2>/dev/null)"

browser: venv collection chromium
	CHROMIUM=$(CHROMIUM) $(PYTHON) -m pytest -q tests/browser

PYTEST_FLAGS ?= -q
integration: venv collection peers
	$(PYTHON) -m pytest $(PYTEST_FLAGS) -m integration tests/integration

# `make suites` runs integration as two halves on bed clusters of their own. The first half holds the bed's
# own tests and the fleet playbook's (their fleet fixtures start cluster-2 and cluster-3), the install-method
# tests, the Gateway API method's among them; every other file, a new one too, is the second half, but the
# ansible-runner (AWX) jobs, which run after the reliability suite.
INTEGRATION_1 := $(addprefix tests/integration/,test_testbed.py test_install_methods.py test_peers.py test_helm_runner.py test_manifest_method.py test_gateway_api.py test_fleet_upgrade.py)
# The ansible-runner (AWX) jobs follow the reliability suite on its cluster (make suites).
INTEGRATION_AWX := tests/integration/test_awx_runner.py
INTEGRATION_2 := $(filter-out $(INTEGRATION_1) $(INTEGRATION_AWX),$(wildcard tests/integration/test_*.py))
.PHONY: integration-1 integration-2 integration-awx
integration-1 integration-2 integration-awx: integration-%: venv collection peers
	$(PYTHON) -m pytest $(PYTEST_FLAGS) -m integration $(INTEGRATION_$(subst awx,AWX,$*))

# Bad input, injected faults (API server restarts, killed istioctl, 409s, webhook outages), double launches,
# foreign objects and secrets on the test bed; prints the counts README.md's Reliability section reports.
.PHONY: reliability
reliability: venv collection
	$(PYTHON) -m pytest $(PYTEST_FLAGS) -m integration tests/reliability

# The two integration halves and reliability at once, each on a bed cluster of its own (the reliability suite
# restarts its API server and stops its istiods on purpose); one line per test, prefixed with the suite's
# name, and each suite's slowest tests at its end (to balance the halves by). Molecule follows the first half on
# its cluster (the primary), the ansible-runner jobs the reliability suite on its: the lanes took 28, 32 and 29
# min before the fleet, AWX and Molecule work was spread over them this way.
SUITE_FLAGS := -v --durations=12 --durations-min=20
.PHONY: suites
suites: venv collection peers testbed-build
	$(PYTHON) tests/parallel.py \
	  "integration-1=TESTBED_CLUSTER=cluster-1 $(MAKE) -s integration-1 PYTEST_FLAGS='$(SUITE_FLAGS)' && $(MAKE) -s molecule" \
	  "integration-2=TESTBED_CLUSTER=integration-2 $(MAKE) -s integration-2 PYTEST_FLAGS='$(SUITE_FLAGS)'" \
	  "reliability=TESTBED_CLUSTER=reliability $(MAKE) -s reliability PYTEST_FLAGS='$(SUITE_FLAGS)' && TESTBED_CLUSTER=reliability $(MAKE) -s integration-awx PYTEST_FLAGS='$(SUITE_FLAGS)'"

molecule: venv collection
	tests/molecule.sh

# The bed's binaries first: some unit tests compare against the real istioctl and helm, and under make test a
# skipped unit test fails (tests/unit/conftest.py).
test: export ISTIO_OPS_NO_SKIPS := 1
test: testbed-build unit sanity lint packaging browser suites

demo: venv collection
	tests/demo.sh

# What a run costs on the local test bed (started or reused): a table, and bench/results.json.
# Not part of `make test`: nothing asserts a time. BENCH_ARGS, e.g. "--reps 3 --only converged".
bench: venv collection peers
	$(PYTHON) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) tests/output
