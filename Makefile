# offgridperf: make run | make test | make lint | make bench | make docs
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

# The test suite always runs against the real PostgreSQL and Redis.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/offgridperf
TEST_REDIS_URL ?= redis://127.0.0.1:6379/1
TEST_BROKER_URL ?= redis://127.0.0.1:6379/2
PYTEST_ARGS ?=
# make bench BENCH=cache runs one benchmark (python -m bench NAME); empty runs them all.
BENCH ?=
# Parallel workers (pytest-xdist): many tests wait on real processes and sleeps rather than on
# the CPU. Each worker has its own test database and Redis key prefix; tests of server-wide
# state form groups (tests/conftest.py) that --dist loadgroup keeps on one worker. 4 workers
# on the 2-core machine: 3 left the CPU idle a quarter of the time, 5 were no faster than 4
# (the CPU is then saturated). TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 4
PYTEST_XDIST ?= -n $(TEST_WORKERS) --dist loadgroup
# Debian packages the tests need (installed by make test when missing).
# chromium for the browser tests; iproute2 for the several-hosts test; prometheus (and its
# promtool) scrapes /metrics and checks the alert rules. (memray's gdb comes from requirements.txt:
# Debian bookworm's gdb 13 breaks the target on CPUs with AMX, see profiling/memrayattach.py.)
SYSTEM_PACKAGES := chromium iproute2 prometheus
# make lint validates deploy/kubernetes/ against this Kubernetes release's API.
KUBERNETES_VERSION := 1.34.0

.PHONY: run test lint bench docs docs-check venv services system-packages postgres-extensions

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): $(PY) requirements.txt requirements-dev.txt agent/pyproject.toml
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(INSTALLED)

run: $(INSTALLED)
	@OFFGRIDPERF_LOCAL=1 $(PY) manage.py bootstrap
	@OFFGRIDPERF_LOCAL=1 $(PY) manage.py seed_emissions --if-empty
	@OFFGRIDPERF_LOCAL=1 $(PY) manage.py loadtest import --if-missing emissions/loadtests/*.json
	@OFFGRIDPERF_LOCAL=1 $(PY) manage.py queryopt target add emissions --from-database-url --if-missing
	@OFFGRIDPERF_LOCAL=1 $(PY) manage.py profile target add emissions --if-missing --children \
		--cmdline "offgridperf.wsgi:application --env OFFGRIDPERF_ROLE=target"
	@echo ""
	@echo "offgridperf is starting: http://$${HOST:-127.0.0.1}:$${PORT:-8000}/  (log in as 'admin';"
	@echo "  password: OFFGRIDPERF_ADMIN_PASSWORD, or the one printed at first start;"
	@echo "  'make admin-password' sets a new one)   Ctrl-C stops everything."
	@echo ""
	@OFFGRIDPERF_LOCAL=1 PROFILING_AGENT=$${PROFILING_AGENT:-1} $(PY) manage.py runall

admin-password: $(INSTALLED)
	@OFFGRIDPERF_LOCAL=1 $(PY) manage.py bootstrap --no-static --reset-admin-password

services:
	@bash .ci/services

system-packages:
	@bash .ci/system-packages $(SYSTEM_PACKAGES)

postgres-extensions: services
	@bash .ci/postgres-extensions

# OFFGRIDPERF_ENV_FILE empty: a developer's own .env never leaks into the tests.
test: $(INSTALLED) system-packages services postgres-extensions
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	CELERY_BROKER_URL=$(TEST_BROKER_URL) OFFGRIDPERF_LOCAL=1 DEBUG=0 OFFGRIDPERF_ENV_FILE= \
	$(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(VENV)/bin/hadolint Dockerfile deploy/postgres/Dockerfile
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.compose-spec compose.yaml
	find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml -print0 | sort -z \
		| xargs -0 $(VENV)/bin/kubernetes-validate --strict --quiet -k $(KUBERNETES_VERSION)
	@$(MAKE) --no-print-directory docs-check

# The references regenerated from the code, then the site (var/site/); a broken link fails.
docs: $(INSTALLED)
	$(PY) -m docs.gen
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# What CI checks: the committed references match the code, the site builds strictly, and the
# CI examples on the CLI and CI page are valid workflows.
docs-check: $(INSTALLED)
	$(PY) -m docs.gen --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows docs/ci/github-workflow.yml
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.gitlab-ci docs/ci/gitlab-ci.yml

bench: $(INSTALLED) services
	@bash bench/setup.sh
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	CELERY_BROKER_URL=$(TEST_BROKER_URL) OFFGRIDPERF_LOCAL=1 \
	$(PY) -m bench $(BENCH)
