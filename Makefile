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

.PHONY: help venv constraints lock run measure-local test test-fast check lint typecheck clean reprocess bench openapi package deploy destroy infra chalice-config checkov checkov-venv

help: ## Show the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@if [ -z "$(PYTHON)" ]; then echo "error: Python 3.12+ not found. Install 3.13 (pyenv install 3.13.0) or run make PYTHON=/path/to/python3.13" >&2; exit 1; fi
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null || { echo "error: PYTHON=$(PYTHON) is not Python 3.12 or newer (Lambda's Pillow 13 wheels need python3.12+). Install 3.13 (pyenv install 3.13.0) or point PYTHON at it" >&2; exit 1; }
	@if [ -x $(BIN)/python ] && ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then rm -rf $(VENV); fi
	@[ -x $(BIN)/python ] || { echo "venv: creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	@echo "venv: installing the pinned dependencies into $(VENV): about 90 packages, ~650 MB (Chalice, moto, Pillow,"
	@echo "      boto3, pytest, mypy, ruff, schemathesis, Playwright). The first time takes a few minutes (about 4 on a"
	@echo "      loaded 2-core machine with an empty pip cache): pip names each package as it fetches it."
	@# pip's own lines, one per package (pip's errors and warnings go to stderr, unfiltered).
	@set -o pipefail; $(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -r requirements-dev.txt -c constraints.txt \
	  | awk '/^Collecting / { print "  fetching  " $$2; fflush() } \
	         /^Installing collected packages/ { print "  installing them (no output until done)"; fflush() }'
	@touch $@
	@echo "venv: $(VENV) is ready"

venv: $(BIN)/.installed ## Create .venv with Python 3.12+ and the pinned dependencies

constraints: ## Re-pin constraints.txt from a throwaway venv after editing requirements*.txt
	@rm -rf .venv-pins && $(PYTHON) -m venv .venv-pins
	.venv-pins/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@{ sed -n '1,3p' constraints.txt; .venv-pins/bin/python -m pip freeze --exclude-editable \
	  | grep -v -i -E "^($$(sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' requirements.txt | paste -sd'|'))=="; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt && rm -rf .venv-pins && echo "constraints.txt updated"

run: venv ## Run the whole pipeline locally: ./inbox -> emulated AWS -> ./outbox (Ctrl-C stops)
	$(BIN)/python -m devstack run

MEASURE_ARGS ?=
measure-local: venv ## Time `make run` on ../shared/corpus: 12 MP latency, images/min vs the CPU bound (MEASURE_ARGS="--batch 20 --burst 300")
	$(BIN)/python -m tools.measure_local_stack $(MEASURE_ARGS)

test: venv ## Run the whole test suite (unit, functional, end-to-end)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

test-fast: venv ## Unit and functional tests only (skips tests marked slow)
	$(BIN)/python -m pytest -n 2 -m "not slow" $(PYTEST_ARGS)

BENCH_ARGS ?=
$(BIN)/.bench-installed: bench/requirements.txt $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt -c constraints.txt
	@touch $@

bench: $(BIN)/.bench-installed ## Time ours vs the older scripts and libvips on ../shared/corpus (BENCH_ARGS="--quick", "--corpus DIR --repeats N")
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.facts  # image facts: time per image, pHash separation (docs/performance.md)
	$(BIN)/python -m bench.formats $(BENCH_FORMATS_ARGS)  # AVIF vs WebP per width, HEIC decode, animation (bench/results/formats.json)

check: lint typecheck ## ruff and mypy

lint: venv
	$(BIN)/ruff check app.py chalicelib devstack tests bench tools deploy
	$(BIN)/ruff format --check app.py chalicelib devstack tests bench tools deploy

typecheck: venv
	$(BIN)/mypy app.py chalicelib devstack bench tools deploy

openapi: venv ## Regenerate openapi.json from the routes (a test checks it is current)
	$(BIN)/python -m tools.openapi > openapi.json.tmp && mv openapi.json.tmp openapi.json

REPROCESS_ARGS ?=
reprocess: venv ## Re-render sources made with older presets (STAGE=dev; REPROCESS_ARGS="--direct --batch-size 50 --restart")
	$(BIN)/python -m tools.reprocess --stage $(STAGE) $(REPROCESS_ARGS)

clean: ## Remove the virtual environments and caches (not build/: it holds Terraform state)
	rm -rf $(VENV) $(CHECKOV_VENV) .pytest_cache .mypy_cache .ruff_cache

# ------------------------------------------------------------------ deploy (issue 4)
# All-Terraform: `make package STAGE=prod`, then `make deploy STAGE=prod` (or terraform
# yourself in build/prod/terraform). Chalice deploy: `make infra STAGE=prod`,
# `make chalice-config STAGE=prod`, `chalice deploy --stage prod`, then
# `make infra STAGE=prod TF_ARGS=-var=configure_functions=true`. See README "Deploy to AWS".
TF_DIR = build/$(STAGE)/terraform
INFRA_DIR = build/$(STAGE)/infra
TF_ARGS ?=
CHECKOV_VENV ?= .venv-checkov
CHECKOV_VERSION := 3.3.30
# checkov pins an old boto3: it gets its own virtual environment.
CHECKOV_PYTHON ?= $(PYTHON)

package: venv ## Build build/STAGE/terraform: chalice package + infra/ + overrides (use STAGE=prod)
	$(BIN)/python deploy/package.py --stage $(STAGE) --out $(TF_DIR)

deploy: package ## package, then terraform init and apply in build/STAGE/terraform (asks before changing anything)
	terraform -chdir=$(TF_DIR) init -input=false
	terraform -chdir=$(TF_DIR) apply $(TF_ARGS)

destroy: venv ## terraform destroy of build/STAGE/terraform (buckets must be empty unless force_destroy=true was applied)
	@[ -f $(TF_DIR)/deployment.zip ] || $(BIN)/python deploy/package.py --stage $(STAGE) --out $(TF_DIR)
	terraform -chdir=$(TF_DIR) init -input=false
	terraform -chdir=$(TF_DIR) destroy $(TF_ARGS)

infra: venv ## Chalice-deploy path: terraform apply of infra/ alone in build/STAGE/infra
	$(BIN)/python deploy/package.py --stage $(STAGE) --infra-only --out $(INFRA_DIR)
	terraform -chdir=$(INFRA_DIR) init -input=false
	terraform -chdir=$(INFRA_DIR) apply $(TF_ARGS)

chalice-config: venv ## Write infra's output names into .chalice/config.json for STAGE (before chalice deploy)
	@[ -d $(INFRA_DIR)/.terraform ] || { echo "error: $(INFRA_DIR) has no Terraform working directory: run \`make infra STAGE=$(STAGE)\` first (README, Deploy to AWS, path 2)" >&2; exit 1; }
	terraform -chdir=$(INFRA_DIR) output -json chalice_environment > $(INFRA_DIR)/chalice_environment.json
	$(BIN)/python deploy/package.py --stage $(STAGE) --chalice-config $(INFRA_DIR)/chalice_environment.json

$(CHECKOV_VENV)/bin/checkov:
	@[ -x $(CHECKOV_VENV)/bin/python ] || $(CHECKOV_PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)

checkov-venv: $(CHECKOV_VENV)/bin/checkov ## Install checkov (pinned) in .venv-checkov

checkov: venv checkov-venv ## Package STAGE (code only) and scan it with checkov and .checkov.yaml
	$(BIN)/python deploy/package.py --stage $(STAGE) --out build/checkov-$(STAGE) --skip-requirements
	$(CHECKOV_VENV)/bin/checkov -d build/checkov-$(STAGE) --config-file .checkov.yaml

lock: venv ## Re-hash requirements-lock.txt from requirements.txt (after editing it; the Lambda package is built from the lock)
	$(BIN)/python -m deploy.lock
