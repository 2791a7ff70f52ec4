# GPUBroker. `make run` starts the product; `make test` runs the tests.
SHELL := /bin/bash
PYTHON_VERSION := $(shell cat .python-version)
# pyenv's interpreter named by .python-version, else whatever python3.12+ is on PATH.
PYTHON ?= $(shell (command -v pyenv >/dev/null && pyenv root >/dev/null 2>&1 && ls -d "$$(pyenv root)/versions/$(PYTHON_VERSION)/bin/python3" 2>/dev/null) || command -v python3.13 || command -v python3.12 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/gpubroker
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15

.PHONY: run test test-faults install migrate lint format bench bench-client clean check-layers

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), "GPUBroker needs Python 3.12+ (found " + sys.version + ")"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python requirements.txt requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	mkdir -p var/broker var/broker-processed var/broker-control
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py createcachetable
	$(BIN)/python manage.py load_providers

# The URL is printed by the Procfile's `url` process once web answers, after the banners.
run: migrate
	PORT=$(PORT) WEB_PORT=$(PORT) $(BIN)/honcho start -f Procfile

# Imports point down the layers (gpubroker → marketplace, health, broker → providers → resilience).
check-layers: $(BIN)/python
	$(BIN)/python tests/layers.py

test: install check-layers
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	  $(BIN)/pytest $(PYTEST_ARGS)

# The fault suite alone (also part of `make test`): real processes, one broken thing each.
test-faults: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	  $(BIN)/pytest tests/faults $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Resilient client overhead per call against a loopback server (docs/resilience.md).
bench-client: install
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
	  $(BIN)/python benchmarks/client_overhead.py

# Time the broker adds over calling a loopback upstream directly (docs/broker.md).
# Uses its own database: BENCH_PROXY_DATABASE_URL (default gpubroker_proxy_bench on 127.0.0.1).
.PHONY: bench-proxy
bench-proxy: install
	REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} $(BIN)/python benchmarks/proxy.py

clean:
	rm -rf $(VENV) var staticfiles

# Marketplace at 100,000 offers: ingest time, p50/p95 server time, SQL queries per request.
# Uses its own database: BENCH_DATABASE_URL (default gpubroker_bench on 127.0.0.1).
.PHONY: bench-marketplace
bench-marketplace: install
	$(BIN)/python benchmarks/marketplace.py

# How a fragment's p95 grows from 10,000 to 1,000,000 offers, both sizes timed in turn (PASS/FAIL
# per row). Own databases: BENCH_10K_DATABASE_URL, BENCH_1M_DATABASE_URL (default
# gpubroker_bench_10k, gpubroker_bench_1m), loaded as bench-marketplace loads when they need it.
.PHONY: bench-growth
bench-growth: install
	$(BIN)/python benchmarks/growth.py

# Catalog API at 100,000 offers: /api/v1/pricing p95 and full CSV export rows/s (PASS/FAIL).
# Own database: BENCH_DATABASE_URL (default gpubroker_bench_catalog on 127.0.0.1).
.PHONY: bench-catalog
bench-catalog: install
	$(BIN)/python benchmarks/catalog_api.py

# Ingest at 100,000 offers: providers.pipeline.ingest against a COPY of the same rows (PASS/FAIL).
# Own database: BENCH_DATABASE_URL (default gpubroker_bench_ingest on 127.0.0.1); BENCH_REPEATS.
.PHONY: bench-ingest
bench-ingest: install
	$(BIN)/python benchmarks/ingest.py

# The marketplace's HTMX fragments under load: uvicorn with 2 workers, concurrency 1, 8, 32.
# Own database: BENCH_DATABASE_URL (default gpubroker_bench_load); BENCH_REUSE=1 keeps its offers.
.PHONY: bench-load
bench-load: install
	$(BIN)/python benchmarks/load.py
