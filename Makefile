# QMTL NextGen developer entry points. Every target is idempotent and says what it does.
#   make setup           venv, dev tools, schema toolchain, system packages (once)
#   make services-up     start Redis, Kafka and Neo4j on 127.0.0.1 and print their table
#   make services-down   stop them (data stays in .services/)
#   make services-status print the table; exits non-zero if a server does not answer
#   make generate        schemas/ -> generated/python, golden fixtures, docs (buf.gen.yaml)
#   make check-generated fail if the committed generated output differs from the schemas'
#   make cross-check     TypeScript (protobuf-es, buf.gen.ts.yaml) reads every golden fixture byte for byte
#   make breaking        buf breaking + our option checks against the latest baseline (AGAINST=<git ref>)
#   make release-schemas VERSION=x.y.z: publish schemas/ as baseline schemas/releases/x.y.z.binpb
#   make docs            static docs site in docs/site/ (open docs/site/index.html)
#   make dashboard       rebuild the Gateway dashboard's bundle from its package-lock.json
#   make lint            ruff, buf lint, buf format --diff
#   make k8s-check       deploy/k8s rendered by kustomize and decoded strictly into the Kubernetes API types
#   make images          gateway, dagmanager and runner images (podman, offline Debian base; deploy/images)
#   make typecheck       mypy --strict on runtime/, services/, codegen/, bench/
#   make bench           benchmarks against their baselines in the same run; prints the ratios
#   make bench-quick     every bench on a small workload (development; bench/results/latest.json)
#   make demo            two sample strategies end to end, no server (BACKEND=real: the real ones)
#   make test            setup + services-up, then the whole test suite and its coverage gate (85% branch)
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
# make breaking: empty compares with the latest baseline in schemas/releases/; or a git ref.
AGAINST ?=
# Everything `make generate` writes; tests/golden/fixtures is append-only and never wiped.
GENERATED := generated docs/schemas/reference.md docs/schemas/CHANGELOG.md docs/openapi tests/golden/fixtures

.PHONY: help setup services-up services-down services-status generate check-generated breaking \
	docs lint typecheck test test-gateway test-dagmanager test-sdk bench fuzz clean lock

help:
	@sed -n '2,/^$$/s/^# //p' Makefile

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

# Generates into a temporary archive and swaps in only when every plugin succeeded; a failure
# names the plugin and leaves the work tree untouched (scripts/generate.sh).
generate: prereqs
	@bash scripts/generate.sh

# docs/schemas/CHANGELOG.md is one output of buf.gen.yaml, so it is written with the rest.
.PHONY: changelog
changelog: generate

check-generated: prereqs
	@echo "==> check-generated: the generated files must be exactly what the schemas produce"
	@bash scripts/check_generated.sh $(GENERATED)

# Generated JavaScript stays out of git (tools/crosscheck/gen/); npm pins: its package-lock.json.
.PHONY: cross-check
cross-check: prereqs
	@echo "==> cross-check: every golden fixture through protobuf-es (TypeScript): same bytes, same JSON"
	@bash scripts/cross_check.sh

breaking: prereqs
	@echo "==> breaking: buf breaking and our option checks against $(or $(AGAINST),the latest baseline)"
	@bash scripts/breaking.sh $(AGAINST)

# Baselines are never rewritten; scripts/release_schemas.sh refuses an existing or older version.
.PHONY: release-schemas
release-schemas: prereqs
	@echo "==> release-schemas: schemas/ -> schemas/releases/$(or $(VERSION),<VERSION>).binpb, schemas/VERSION"
	@bash scripts/release_schemas.sh $(VERSION)

docs: prereqs
	@echo "==> docs: public OpenAPI + schema reference -> docs/site/ (Redoc, marked; pinned by docs/site-src/package-lock.json)"
	@bash scripts/docs.sh

.PHONY: dashboard
dashboard:
	@echo "==> dashboard: services/gateway/dashboard-src -> the gateway package's dashboard/static/dashboard.js (esbuild; pinned by its package-lock.json)"
	@bash scripts/dashboard.sh

# The validator (Go: k8s.io/api + kustomize's krusty, pinned by its go.sum) is built once into
# .tools/bin and rebuilt only when its sources change; tests/deploy runs it too.
.PHONY: k8s-check
k8s-check:
	@echo "==> k8s-check: deploy/k8s rendered with kustomize and decoded strictly into the Kubernetes API types"
	@bash deploy/k8s/validate/build.sh
	@.tools/bin/k8s-validate deploy/k8s

# The base is made once (debootstrap, ~1 min); podman's layer cache rebuilds only what changed.
# BASE_IMAGE=python:3.11-slim where a registry is reachable (deploy/images/README.md).
.PHONY: images
images: prereqs
	@echo "==> images: localhost/qmtl-{gateway,dagmanager,runner} with podman, each size against 250 MB"
	@bash scripts/images.sh

lint: prereqs
	@echo "==> lint: ruff check, ruff format --check, buf lint, buf format --diff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check .
	@$(BUF) lint
	@$(BUF) format --diff --exit-code schemas

typecheck: prereqs
	@echo "==> typecheck: mypy --strict $(MYPY_TARGETS)"
	@$(BIN)/mypy $(MYPY_TARGETS)

# Coverage of every Python process of the run: check-generated's buf plugins, pytest and the
# services and CLIs the tests start (the .pth of coverage's wheel reads COVERAGE_PROCESS_START);
# [tool.coverage] in pyproject.toml sets the gate. With PYTEST_ARGS (a subset) the table is
# printed but not gated. docs/testing.md.
test: export COVERAGE_PROCESS_START := $(CURDIR)/pyproject.toml
test: export COVERAGE_FILE := $(CURDIR)/.coverage
test: services-up coverage-erase check-generated cross-check
	@echo "==> test: pytest against the real servers, coverage measured"
	@$(BIN)/pytest $(PYTEST_ARGS)
	@$(BIN)/coverage combine --quiet
	@echo "==> coverage: branch coverage of runtime/ services/ codegen/ (files at 100% not listed)"
	@$(BIN)/coverage report $(if $(PYTEST_ARGS),--fail-under=0)

.PHONY: coverage-erase
coverage-erase: prereqs
	@$(BIN)/coverage erase

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
	@echo "==> bench [1/8 queue]: work queue vs a raw redis-py baseline (same Redis, same fsync policy)"
	@$(BIN)/python -m bench.queue.run $(BENCH_ARGS)
	@echo "==> bench [2/8 http]: generated GET route vs a bare Starlette route (same bytes, same server)"
	@$(BIN)/python -m bench.http.run
	@echo "==> bench [3/8 graph]: tag lookup at 100k nodes with vs without the TAG index; 1,000-node diff (Neo4j)"
	@$(BIN)/python -m bench.graph.run $(GRAPH_BENCH_ARGS)
	@echo "==> bench [4/8 events]: 1 KB events through the EventBus (Kafka) vs raw aiokafka with the same safe settings"
	@$(BIN)/python -m bench.events.run $(EVENTS_BENCH_ARGS)
	@echo "==> bench [5/8 submit]: 1,000-node DAG through qmtl gateway -> qmtl dagmanager (real, memory) vs the bare diff; 2+2 vs 1+1 CPU per submission"
	@$(BIN)/python -m bench.submit.run $(SUBMIT_BENCH_ARGS)
	@echo "==> bench [6/8 codec]: JSON encode/decode of a 50-node DAG: generated codec vs json_format, beside raw upb binary"
	@$(BIN)/python -m bench.codec.run
	@echo "==> bench [7/8 wire]: binary encode of a 50-node DAG through the runtime codec vs raw upb"
	@$(BIN)/python -m bench.wire.run
	@echo "==> bench [8/8 codegen]: make generate vs a one-shot grpc_tools.protoc of the same schemas (v1, v1 + 200 synthetic files, no-op rerun)"
	@$(BIN)/python -m bench.codegen.run
	@echo "==> bench: every figure as data in bench/results/latest.json (name, ours, baseline, unit, ratio, goal, met)"

# Every bench on a small workload, for development: each writes its figures to
# bench/results/latest.json (in "<bench>-quick" sections, so a full run's figures stay). The full
# `make bench` stays the reference.
.PHONY: bench-quick
bench-quick: services-up
	@echo "==> bench-quick: every bench on a small workload (development only; make bench is the reference)"
	@$(BIN)/python -m bench.queue.run --quick
	@$(BIN)/python -m bench.http.run --quick
	@$(BIN)/python -m bench.graph.run --quick
	@$(BIN)/python -m bench.events.run --quick
	@$(BIN)/python -m bench.submit.run --quick
	@$(BIN)/python -m bench.codec.run --quick
	@$(BIN)/python -m bench.wire.run --quick
	@$(BIN)/python -m bench.codegen.run --quick

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
		services/gateway/dashboard-src/node_modules tools/crosscheck/node_modules tools/crosscheck/gen
	@find . -name __pycache__ -type d -prune -exec rm -rf {} +
