# sharedsw.cvmfs — one entry point for people and CI.
#   make test   install what is needed, then lint, sanity, unit, integration, molecule
#   make lab    the whole service on lab hosts: hello uploaded to S3, published, run on a client
#               through squid (exit 77, nothing created, without CernVM-FS packages)
SHELL := /bin/bash
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
VENV ?= $(ROOT)/.venv
export PATH := $(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(VENV)
export STAGE_LOG ?= $(ROOT)/tests/output/stages.tsv
# Outside the work tree (a link back into it would make tools walk in circles); same path as tests/conftest.py
export ANSIBLE_COLLECTIONS_PATH := $(or $(TMPDIR),/tmp)/sharedsw-cvmfs-collections-$(shell printf %s '$(ROOT)' | sha256sum | cut -c1-12)
export ANSIBLE_ROLES_PATH := $(ROOT)/roles
STAGE := $(ROOT)/tools/stage.sh
# scenarios side by side in the molecule stage (2 cores: the lab hosts mostly wait on each other)
MOLECULE_JOBS ?= 2

.PHONY: test deps collection lint sanity unit integration molecule lab lab-destroy lab-status clean report

test: deps
	@mkdir -p tests/output && : > $(STAGE_LOG) && rm -f tests/output/molecule-failures.txt
	@set -o pipefail; rc=0; \
	  $(MAKE) --no-print-directory lint || rc=1; \
	  $(MAKE) --no-print-directory sanity || rc=1; \
	  $(MAKE) --no-print-directory molecule || rc=1; \
	  $(MAKE) --no-print-directory pytest-all || rc=1; \
	  $(MAKE) --no-print-directory report; exit $$rc

deps:
	@$(STAGE) deps $(ROOT)/tools/deps.sh

# The collection as Ansible sees it: $ANSIBLE_COLLECTIONS_PATH/ansible_collections/sharedsw/cvmfs -> here
collection:
	@mkdir -p $(ANSIBLE_COLLECTIONS_PATH)/ansible_collections/sharedsw
	@ln -sfn $(ROOT) $(ANSIBLE_COLLECTIONS_PATH)/ansible_collections/sharedsw/cvmfs

lint: collection
	@$(STAGE) lint bash -c 'ansible-lint --profile production --offline && python tools/check_argument_specs.py && antsibull-changelog lint'

sanity:
	@$(STAGE) sanity $(ROOT)/tools/sanity.sh --requirements

unit: collection
	@$(STAGE) unit tools/pytest.sh tests/unit

integration: collection
	@$(STAGE) integration tools/pytest.sh tests/integration

# unit + integration in one pytest run, so CI reads one summary line
pytest-all: collection
	@$(STAGE) pytest tools/pytest.sh tests/unit tests/integration

molecule: collection
	@$(STAGE) molecule $(ROOT)/tools/molecule.sh --jobs $(MOLECULE_JOBS)

lab: deps collection
	@$(ROOT)/tools/lab.sh up

lab-destroy:
	@$(ROOT)/tools/lab.sh down

lab-status:
	@$(ROOT)/tools/lab.sh status

# Stage times, then pytest's own summary line again: CI reads the closing line.
report:
	@test -s tests/output/molecule-failures.txt && { echo; echo "Molecule scenarios that failed, or passed only on a retry (logs in tests/output/molecule/):"; cat tests/output/molecule-failures.txt; } || true
	@echo; echo "Stage wall times (s):"; awk -F'\t' '{printf "  %-12s %8s  %s\n", $$1, $$2, ($$3==0?"ok":"FAILED")}' $(STAGE_LOG)
	@test -s tests/output/pytest-summary.txt && cat tests/output/pytest-summary.txt || true

clean:
	rm -rf tests/output .cache .pytest_cache
