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
export ANSIBLE_COLLECTIONS_PATH := $(abspath $(COLLECTIONS))
export ANSIBLE_COLLECTIONS_SCAN_SYS_PATH := false
export ANSIBLE_NOCOLOR := 1
export PATH := $(abspath $(VENV))/bin:$(PATH)

-include tests/testbed/testbed.mk

.PHONY: help venv collection unit sanity lint integration molecule test demo clean

help:
	@echo "make demo        run the demo job on the local test bed (or \$$KUBECONFIG's cluster)"
	@echo "make test        unit, sanity, lint, integration and Molecule tests"
	@echo "make unit | sanity | lint | integration | molecule"
	@echo "make testbed-up | testbed-down | testbed-env | testbed-build"

venv: $(VENV_STAMP)
$(VENV_STAMP): requirements.txt requirements-dev.txt
	@echo ">> creating $(VENV) (ansible-core, kubernetes, pytest, molecule, ansible-lint)"
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	@touch $@

# Ansible finds the collection through a link, so the checkout itself is what runs.
collection: $(COLLECTION_LINK)
$(COLLECTION_LINK):
	@mkdir -p $(dir $@)
	@ln -sfn $(abspath .) $@

unit: venv collection
	$(PYTHON) -m pytest -q tests/unit

# ansible-test wants the collection under ansible_collections/NS/NAME and no symlinks: copy what git tracks.
sanity: venv
	@rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_ROOT)
	@git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t $(SANITY_ROOT)/
	cd $(SANITY_ROOT) && $(abspath $(VENV))/bin/ansible-test sanity --venv --python 3.11 --color no

lint: venv collection
	$(VENV)/bin/ruff check plugins tests
	$(VENV)/bin/ruff format --check plugins tests
	$(VENV)/bin/ansible-lint --profile production roles playbooks

integration: venv collection
	$(PYTHON) -m pytest -q -m integration tests/integration

molecule: venv collection
	tests/molecule.sh

test: unit sanity lint integration molecule

demo: venv collection
	tests/demo.sh

clean:
	rm -rf $(BUILD) tests/output
