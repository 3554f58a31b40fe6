# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint layout tools bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: run the exporter against its built-in simulated Flow Service on :7941
demo: $(STAMP)
	$(BIN)/aep-flow-exporter --demo

## tools: the programs tests run for real (Debian's prometheus, promtool)
tools:
	./.ci/install-tools

## test-unit: tests/unit alone, in process with the venv only (no simulator, no programs to install; seconds)
## test-integration: tests/integration, the simulator over HTTP and the CLI against it (minutes)
## test-system: tests/system, the real programs (Prometheus, promtool, amtool, Chromium, podman, the soak)
.PHONY: test-unit test-integration test-system
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

test-system: $(STAMP) tools
	$(BIN)/python -m pytest tests/system $(PYTEST_ARGS)

## test: the gates (lint, format, types), then the whole test suite, every tier, quickest first
## (installs what it needs first). Any finding fails the run, and so does pytest's exit 5 (no tests collected).
test: $(STAMP) tools
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## lint: ruff (lint and format check), mypy, import-linter (the layers of docs/architecture.md,
##       configured in pyproject.toml), the size gate (.ci/sizes.py) and the generated tree listing
##       (docs/layout.py --check); all run, any finding fails
lint: $(STAMP)
	@status=0; \
	echo "ruff check ."; $(BIN)/ruff check . || status=1; \
	echo "ruff format --check ."; $(BIN)/ruff format --check . || status=1; \
	echo "mypy"; $(BIN)/mypy || status=1; \
	echo "lint-imports"; $(BIN)/lint-imports --no-cache || status=1; \
	echo "sizes"; $(BIN)/python .ci/sizes.py || status=1; \
	echo "docs/layout.py --check"; $(BIN)/python docs/layout.py --check || status=1; \
	[ $$status = 0 ] || echo "lint: findings above; fix them (ruff format <file> rewrites formatting)" >&2; \
	exit $$status

## layout: rewrite the tree listing in README.md and docs/architecture.md from the modules' docstrings
layout: $(STAMP)
	$(BIN)/python docs/layout.py

## bench: the scale benchmark (1,000 to 10,000 flows, friendly and hostile simulated Adobe; some minutes);
##        writes bench/results.md and bench/results-hostile.md
bench: $(STAMP)
	command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; }
	$(BIN)/python bench/run.py
	$(BIN)/python bench/run.py --profile hostile
	$(BIN)/python bench/state_file.py

## soak: a day of simulated time in minutes (1,000 flows, faults, churn, pruning): RSS stays flat,
##       counters equal the simulator's ground truth; exits non-zero if not (not part of `make test`)
soak: $(STAMP)
	$(BIN)/python bench/soak.py --out bench/results-soak.md

clean:
	rm -rf $(VENV) .pytest_cache
