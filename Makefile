# Vigil — `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: chaos help install system-deps alertmanager-up alertmanager-down kafka-up kafka-down worker demo test test-unit bench nab-loco lint fmt clean-state

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c docker/requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install Vigil with its dev extras
	@scripts/kafka.sh jars
	@scripts/vendor_uplot.sh check || scripts/vendor_uplot.sh fetch

kafka-up: ## start the local Kafka broker (KRaft) and wait until it answers; reuses a running one
	@scripts/kafka.sh up

kafka-down: ## stop the local Kafka broker, leaving no process behind
	@scripts/kafka.sh down

worker: install kafka-up ## run one Vigil worker in the foreground
	$(BIN)/vigil worker

demo: install ## broker + worker + generator + web view; Ctrl-C stops all it started
	@scripts/demo.sh

system-deps: ## Debian packages the tests drive (chromium, prometheus, alertmanager)
	@scripts/system-deps.sh

alertmanager-up: ## start a local Alertmanager on 127.0.0.1:19093 (installs Debian's package if missing)
	@scripts/alertmanager.sh up

alertmanager-down: ## stop the local Alertmanager
	@scripts/alertmanager.sh down

test: install system-deps kafka-up ## run every test (unit and through the real broker)
	$(BIN)/pytest -q

test-unit: install ## run the tests that need no broker
	$(BIN)/pytest -q tests/unit

bench: install kafka-up ## benchmarks (prints a table; BENCH_OUT=file.json writes JSON)
	$(BIN)/python scripts/bench.py

chaos: install kafka-up ## SIGKILL a worker 3 times mid-replay; lost/duplicated per topic
	$(BIN)/python scripts/chaos.py run

NAB ?= ../shared/nab

nab-loco: install ## NAB leave-one-category-out table and the short-history proxy (NAB=../shared/nab)
	$(BIN)/vigil nab-score --loco --cuts --data $(NAB)/data --windows $(NAB)/combined_windows.json

lint: install ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-state: ## delete local worker state (RocksDB) and logs under var/
	rm -rf var/
