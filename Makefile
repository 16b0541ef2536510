# QMTL NextGen developer entry points. Every target is idempotent and says what it does.
#   make setup           venv, dev tools, schema toolchain, system packages (once)
#   make services-up     start Redis, Kafka and Neo4j on 127.0.0.1 and print their table
#   make services-down   stop them (data stays in .services/)
#   make services-status print the table; exits non-zero if a server does not answer
#   make generate        schemas/ -> generated/python, golden fixtures, docs (buf.gen.yaml)
#   make check-generated fail if the committed generated output differs from the schemas'
#   make breaking        buf breaking against the schemas on main (AGAINST=<git ref>)
#   make docs            static docs site in docs/site/ (open docs/site/index.html)
#   make dashboard       rebuild the Gateway dashboard's bundle from its package-lock.json
#   make lint            ruff, buf lint, buf format --diff
#   make typecheck       mypy --strict on runtime/, services/, codegen/, bench/
#   make bench           benchmarks against their baselines in the same run; prints the ratios
#   make demo            two sample strategies end to end, no server (BACKEND=real: the real ones)
#   make test            setup + services-up, then the whole test suite
#   make test-gateway    the Gateway's tests alone (make test-dagmanager, make test-sdk: likewise)
#   make fuzz            atheris on every fuzz target, FUZZ_SECONDS in all (default 600)
#   make clean           stop the servers and remove .venv, .tools, .services, .fuzz and caches

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
BUF := .tools/bin/buf
MYPY_TARGETS := runtime/qmtl services/qmtl services/gateway/qmtl services/dag_manager/qmtl services/sdk/qmtl codegen/qmtl_codegen bench
BENCH_ARGS ?=
# make bench: extra arguments of bench/graph (e.g. --quick); bench/graph/README.md.
GRAPH_BENCH_ARGS ?=
# make bench: extra arguments of bench/events (e.g. --quick); bench/events/README.md.
EVENTS_BENCH_ARGS ?=
# make bench: extra arguments of bench/submit (e.g. --quick); bench/submit/README.md.
SUBMIT_BENCH_ARGS ?=
# make demo: BACKEND=real starts the real servers and runs `qmtl demo --backend real`;
# DEMO_ARGS: more flags of `qmtl demo` (e.g. --log-level INFO).
BACKEND ?= memory
DEMO_ARGS ?=
# make fuzz: total seconds, split evenly over the targets (docs/operations/fuzzing.md).
FUZZ_SECONDS ?= 600
AGAINST ?= main
# Everything `make generate` writes; tests/golden/fixtures is append-only and never wiped.
GENERATED := generated docs/schemas/reference.md docs/openapi tests/golden/fixtures

.PHONY: help setup services-up services-down services-status generate check-generated breaking \
	docs lint typecheck test test-gateway test-dagmanager test-sdk bench fuzz clean lock

help:
	@sed -n '2,18s/^# //p' Makefile

setup:
	@echo "==> setup: system packages, .venv and .tools (skips what is already in place)"
	@bash scripts/setup.sh

# The same set-up as a prerequisite of other targets, without the version table.
.PHONY: prereqs
prereqs:
	@bash scripts/setup.sh --quiet

services-up: prereqs
	@echo "==> services-up: Redis, Kafka, Neo4j on 127.0.0.1"
	@bash scripts/services/all.sh up

services-down:
	@echo "==> services-down: stopping Redis, Kafka, Neo4j"
	@bash scripts/services/all.sh down

services-status:
	@bash scripts/services/all.sh status

# Generates into a temporary tree and swaps in only when every plugin succeeded; a failure
# names the plugin and leaves the work tree untouched (scripts/generate.sh).
generate: prereqs
	@bash scripts/generate.sh

check-generated: prereqs
	@echo "==> check-generated: the generated files must be exactly what the schemas produce"
	@bash scripts/check_generated.sh $(GENERATED)

breaking: prereqs
	@echo "==> breaking: buf breaking against $(AGAINST)"
	@bash scripts/breaking.sh $(AGAINST)

docs: prereqs
	@echo "==> docs: public OpenAPI + schema reference -> docs/site/ (Redoc, marked; pinned by docs/site-src/package-lock.json)"
	@bash scripts/docs.sh

.PHONY: dashboard
dashboard:
	@echo "==> dashboard: services/gateway/dashboard-src -> the gateway package's dashboard/static/dashboard.js (esbuild; pinned by its package-lock.json)"
	@bash scripts/dashboard.sh

lint: prereqs
	@echo "==> lint: ruff check, ruff format --check, buf lint, buf format --diff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BUF) lint
	@$(BUF) format --diff --exit-code schemas

typecheck: prereqs
	@echo "==> typecheck: mypy --strict $(MYPY_TARGETS)"
	@$(BIN)/mypy $(MYPY_TARGETS)

test: services-up check-generated
	@echo "==> test: pytest against the real servers"
	@$(BIN)/pytest $(PYTEST_ARGS)

# One service's tests alone (its package, tests/<service>/ and the boundary check).
test-gateway: services-up
	@echo "==> test-gateway: the Gateway's tests against the real servers"
	@$(BIN)/pytest tests/gateway tests/test_service_boundaries.py $(PYTEST_ARGS)

test-dagmanager: services-up
	@echo "==> test-dagmanager: the DAG Manager's tests against the real servers"
	@$(BIN)/pytest tests/dag_manager tests/test_service_boundaries.py $(PYTEST_ARGS)

test-sdk: services-up
	@echo "==> test-sdk: the SDK's tests against the real servers"
	@$(BIN)/pytest tests/sdk tests/test_service_boundaries.py $(PYTEST_ARGS)

bench: services-up
	@echo "==> bench [1/5 queue]: work queue vs a raw redis-py baseline (same Redis, same fsync policy)"
	@$(BIN)/python -m bench.queue.run $(BENCH_ARGS)
	@echo "==> bench [2/5 http]: generated GET route vs a bare Starlette route (same bytes, same server)"
	@$(BIN)/python -m bench.http.run
	@echo "==> bench [3/5 graph]: tag lookup at 100k nodes with vs without the TAG index; 1,000-node diff (Neo4j)"
	@$(BIN)/python -m bench.graph.run $(GRAPH_BENCH_ARGS)
	@echo "==> bench [4/5 events]: 1 KB events through the EventBus (Kafka) vs raw aiokafka with the same safe settings"
	@$(BIN)/python -m bench.events.run $(EVENTS_BENCH_ARGS)
	@echo "==> bench [5/5 submit]: 1,000-node DAG through qmtl gateway -> qmtl dagmanager (real, memory) vs the bare diff; 2+2 vs 1+1 CPU per submission"
	@$(BIN)/python -m bench.submit.run $(SUBMIT_BENCH_ARGS)

.PHONY: demo
demo: $(if $(filter real,$(BACKEND)),services-up,prereqs)
	@echo "==> demo: two strategies sharing nodes, end to end (--backend $(BACKEND))"
	@$(BIN)/qmtl demo --backend $(BACKEND) $(DEMO_ARGS)

fuzz: prereqs
	@echo "==> fuzz: atheris on tests/fuzz/targets.py for $(FUZZ_SECONDS) s in all; crashes -> tests/fuzz/crashes/"
	@FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh

lock: prereqs
	@echo "==> lock: re-pinning constraints.txt from the current .venv"
	@{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt

clean:
	@echo "==> clean: stopping servers, removing .venv .tools .services .fuzz and caches"
	@if [ -x scripts/services/all.sh ]; then bash scripts/services/all.sh down || true; fi
	@rm -rf $(VENV) .tools .services .fuzz .pytest_cache .mypy_cache .ruff_cache .hypothesis docs/site docs/site-src/node_modules \
		services/gateway/dashboard-src/node_modules
	@find . -name __pycache__ -type d -prune -exec rm -rf {} +
