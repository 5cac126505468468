# image-pipeline developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
BIN := $(VENV)/bin
STAGE ?= dev
PYTEST_ARGS ?=

# A Python 3.12+ interpreter: $(PYTHON) if given, else pyenv's 3.13.0, else python3.13/3.12.
PYTHON ?= $(shell for c in "$$(pyenv root 2>/dev/null)/versions/$$(cat .python-version 2>/dev/null)/bin/python" python3.13 python3.12 python3; do \
	  p=$$(command -v "$$c" 2>/dev/null) || continue; \
	  "$$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo "$$p"; break; }; done)

.PHONY: help venv run measure-local test test-fast check lint typecheck clean reprocess bench openapi

help: ## Show the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements.txt requirements-dev.txt
	@if [ -z "$(PYTHON)" ]; then echo "error: Python 3.12+ not found. Install 3.13 (pyenv install 3.13.0) or run make PYTHON=/path/to/python3.13" >&2; exit 1; fi
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then rm -rf $(VENV); fi
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

venv: $(BIN)/.installed ## Create .venv with Python 3.12+ and the pinned dependencies

run: venv ## Run the whole pipeline locally: ./inbox -> emulated AWS -> ./outbox (Ctrl-C stops)
	$(BIN)/python -m chalicelib.local run

MEASURE_ARGS ?=
measure-local: venv ## Time `make run` on ../shared/corpus: 12 MP latency median, images/min for 20 (MEASURE_ARGS="--runs 7 --batch 20")
	$(BIN)/python -m tools.measure_local_stack $(MEASURE_ARGS)

test: venv ## Run the whole test suite (unit, functional, end-to-end)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-fast: venv ## Unit and functional tests only (skips tests marked slow)
	$(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

BENCH_ARGS ?=
$(BIN)/.bench-installed: bench/requirements.txt $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@touch $@

bench: $(BIN)/.bench-installed ## Time ours vs the older scripts and libvips on ../shared/corpus (BENCH_ARGS="--corpus DIR --repeats N")
	$(BIN)/python -m bench.run $(BENCH_ARGS)

check: lint typecheck ## ruff and mypy

lint: venv
	$(BIN)/ruff check app.py chalicelib tests bench tools
	$(BIN)/ruff format --check app.py chalicelib tests bench tools

typecheck: venv
	$(BIN)/mypy app.py chalicelib bench tools

openapi: venv ## Regenerate openapi.json from the routes (a test checks it is current)
	$(BIN)/python -m tools.openapi > openapi.json.tmp && mv openapi.json.tmp openapi.json

REPROCESS_ARGS ?=
reprocess: venv ## Re-render sources made with older presets (STAGE=dev; REPROCESS_ARGS="--direct --batch-size 50 --restart")
	$(BIN)/python -m chalicelib.reprocess --stage $(STAGE) $(REPROCESS_ARGS)

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
