# QMTL NextGen developer entry points. Every target is idempotent and says what it does.
#   make setup           venv, dev tools, schema toolchain, system packages (once)
#   make services-up     start Redis, Kafka and Neo4j on 127.0.0.1 and print their table
#   make services-down   stop them (data stays in .services/)
#   make services-status print the table; exits non-zero if a server does not answer
#   make lint            ruff (lint + format check)
#   make typecheck       mypy --strict on runtime/, services/, codegen/
#   make test            setup + services-up, then the whole test suite
#   make clean           stop the servers and remove .venv, .tools, .services and caches

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
MYPY_TARGETS := runtime/qmtl services/qmtl codegen/qmtl_codegen

.PHONY: help setup services-up services-down services-status lint typecheck test clean lock

help:
	@sed -n '2,10s/^# //p' Makefile

setup:
	@echo "==> setup: system packages, .venv and .tools (skips what is already in place)"
	@bash scripts/setup.sh

services-up: setup
	@echo "==> services-up: Redis, Kafka, Neo4j on 127.0.0.1"
	@bash scripts/services/all.sh up

services-down:
	@echo "==> services-down: stopping Redis, Kafka, Neo4j"
	@bash scripts/services/all.sh down

services-status:
	@bash scripts/services/all.sh status

lint: setup
	@echo "==> lint: ruff check and ruff format --check"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .

typecheck: setup
	@echo "==> typecheck: mypy --strict $(MYPY_TARGETS)"
	@$(BIN)/mypy $(MYPY_TARGETS)

test: services-up
	@echo "==> test: pytest against the real servers"
	@$(BIN)/pytest $(PYTEST_ARGS)

lock: setup
	@echo "==> lock: re-pinning constraints.txt from the current .venv"
	@{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt

clean:
	@echo "==> clean: stopping servers, removing .venv .tools .services and caches"
	@if [ -x scripts/services/all.sh ]; then bash scripts/services/all.sh down || true; fi
	@rm -rf $(VENV) .tools .services .pytest_cache .mypy_cache .ruff_cache
	@find . -name __pycache__ -type d -prune -exec rm -rf {} +
