# kubemigrate: every set-up step a fresh machine needs lives here.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HARNESS := $(PY) -m harness
PYTEST_ARGS ?=
KUBECTL ?= $(shell command -v kubectl 2>/dev/null || echo $$(harness/cluster/build.sh)/kubectl)

.PHONY: help venv lint fmt unit integration test tools sysdeps dev-up dev-down dev-status crds install run demo bench clean manifests

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.stamp: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

venv: $(VENV)/.stamp ## create .venv with the package (editable) and the dev tools

sysdeps: ## install PostgreSQL and bubblewrap from Debian's packages if missing
	@missing=""; \
	  [ -x /usr/lib/postgresql/15/bin/initdb ] || missing="$$missing postgresql-15 postgresql-client-15"; \
	  command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	  command -v pgbench >/dev/null || missing="$$missing postgresql-contrib"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq $$missing >/dev/null; \
	  fi

.PHONY: image-deps image
image-deps: ## install buildah and mmdebstrap from Debian's packages if missing
	@missing=""; \
	  command -v buildah >/dev/null || missing="$$missing buildah"; \
	  command -v mmdebstrap >/dev/null || missing="$$missing mmdebstrap"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    $(if $(filter 0,$(shell id -u)),,sudo) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -qq $$missing >/dev/null; \
	  fi

image: venv image-deps ## build localhost/kubemigrate:dev with buildah (Debian base cached outside the repo)
	$(PY) -m harness.image

tools: ## build etcd, kube-apiserver, kube-controller-manager, kubectl and helm (cached outside the repo)
	@harness/cluster/build.sh >/dev/null

lint: venv ## ruff (rules and formatting), mypy --strict and import-linter
	$(VENV)/bin/ruff check operator tests bench helm harness
	$(VENV)/bin/ruff format --check operator tests bench helm harness
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

fmt: venv ## format the code
	$(VENV)/bin/ruff check --fix operator tests bench helm harness
	$(VENV)/bin/ruff format operator tests bench helm harness

unit: venv ## the fast, hermetic tests
	$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

integration: venv sysdeps tools image ## the tests against a real control plane and PostgreSQL, and the short fault runs
	$(PY) -m pytest tests/integration tests/faults -q $(PYTEST_ARGS)

test: lint unit integration ## everything CI runs

dev-up: venv sysdeps tools ## start the local control plane, PostgreSQL and node runner; writes .dev/env
	$(HARNESS) up

demo: venv sysdeps tools image ## the local cluster, the chart, migrations/ applied, a backup and a rollback
	$(PY) -m harness.examples.demo

dev-down: venv ## stop what dev-up started
	$(HARNESS) down

dev-status: venv ## show what is running
	$(HARNESS) status

install: venv ## apply the CRDs to the cluster $KUBECONFIG names
	$(KUBECTL) apply --server-side --force-conflicts -f crds/

run: venv ## run the operator in the foreground against $KUBECONFIG, in all namespaces
	$(VENV)/bin/kopf run --standalone --all-namespaces -m kubemigrate.controller.main

crds: venv ## regenerate crds/, docs/resources.md and the chart's CRD templates from the models
	$(PY) -m kubemigrate.models.gen.crds --write crds/
	$(PY) -m kubemigrate.models.gen.reference --write docs/resources.md
	$(PY) helm/sync_crds.py

manifests: venv tools ## render manifests/install.yaml from the Helm chart
	$(PY) helm/sync_crds.py
	$(PY) helm/render_manifests.py --helm "$$(harness/cluster/build.sh)/helm"

$(VENV)-bench/.stamp:
	$(PYTHON) -m venv $(VENV)-bench
	$(VENV)-bench/bin/pip install --quiet alembic yoyo-migrations 'psycopg[binary]'
	touch $@

bench: venv sysdeps image $(VENV)-bench/.stamp ## the benchmarks; results go in docs/benchmarks.md
	$(PY) bench/engine_bench.py
	$(PY) bench/backup_bench.py
	$(PY) bench/operator_bench.py
	$(PY) bench/set_bench.py
	$(PY) bench/batch_bench.py
	$(PY) bench/objstore_bench.py

clean: dev-down ## remove .dev and the venv (the Go build cache stays)
	rm -rf .dev $(VENV)

faults-engine: venv sysdeps ## the engine's fault suite in full: 20 kill -9 of apply and of rollback, each re-run checked (docs/reliability.md)
	KUBEMIGRATE_FAULT_KILLS=20 $(PY) -m pytest tests/faults/engine -q -s $(PYTEST_ARGS)
.PHONY: faults-engine

bench-set: venv sysdeps image ## a MigrationSet of 332 migrations until Ready against kubemigrate apply of the directory (docs/benchmarks.md)
	$(PY) bench/set_bench.py
.PHONY: bench-set

faults-batch: venv sysdeps ## batched steps in full: 2 million rows, 10 kill -9 of apply per form, each re-run checked (docs/engine.md)
	KUBEMIGRATE_BATCH_ROWS=2000000 KUBEMIGRATE_BATCH_KILLS=10 $(PY) -m pytest tests/integration/cli/test_cli_batched.py -q -s -k kill $(PYTEST_ARGS)
.PHONY: faults-batch

bench-batch: venv sysdeps ## a 10 million row backfill, batched against one UPDATE: time, workload p99, bloat (docs/benchmarks.md)
	$(PY) bench/batch_bench.py $(BENCH_ARGS)
.PHONY: bench-batch

bench-bigfile: venv sysdeps ## one 4 MB migration of 40,000 statements: kubemigrate apply against psql -f (docs/benchmarks.md)
	$(PY) bench/bigfile_bench.py
.PHONY: bench-bigfile

bench-objstore: venv sysdeps ## about 1 GB backed up to and restored from a local S3 server (moto), against pg_dump | upload; -j 2 against -j 1
	$(PY) bench/objstore_bench.py
.PHONY: bench-objstore

# -- the operator's fault suite (tests/faults/operator); its short version (3 kills, the
# hostile-manifest corpus, the Secret canary) runs in `make integration` with tests/faults.
.PHONY: faults

faults: venv sysdeps tools image ## the operator's fault suite in full: 25 kills, outages, hostile manifests, canary (docs/reliability.md)
	KUBEMIGRATE_FAULTS=full $(PY) -m pytest tests/faults/operator -q -rA -m "not short" $(PYTEST_ARGS)

bench-fleet: venv sysdeps image ## a fleet of 200 tenant databases x 20 migrations and 1,000 schemas until Ready against an xargs -P 10 loop of kubemigrate apply, with the operator's RSS (docs/benchmarks.md)
	$(PY) bench/fleet_bench.py $(BENCH_ARGS)
.PHONY: bench-fleet
