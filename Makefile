# The project's interface: `make demo` and `make test` do all the set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

SAMPLE_IMAGE ?= samples/kitchen-table.jpg
SAMPLE_PROMPT ?= Put a donut next to the flour.
DEMO_OUT ?= demo-output

.PHONY: help install demo test lint typecheck cfn-lint unit integration bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(INSTALLED) ## create .venv with the package, the local-run extras and the dev tools

demo: $(INSTALLED) ## run the whole pipeline locally on the sample image and print where results are
	$(BIN)/kontext-pipeline local --image "$(SAMPLE_IMAGE)" --prompt "$(SAMPLE_PROMPT)" \
		--num-images 2 --output-format png --out "$(DEMO_OUT)"

test: lint typecheck cfn-lint unit integration ## everything CI runs

lint: $(INSTALLED) ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(INSTALLED) ## mypy, strict on the package
	$(BIN)/mypy

cfn-lint: $(INSTALLED) ## validate template.yaml
	$(BIN)/cfn-lint template.yaml

unit: $(INSTALLED) ## unit tests
	$(BIN)/pytest tests/unit -q

integration: $(INSTALLED) ## the real state machine on moto through the model emulator
	$(BIN)/pytest tests/integration -q

bench: $(INSTALLED) ## benchmarks: print figures, write benchmarks/results/
	$(BIN)/python -m benchmarks.run

clean: ## remove the virtualenv and local outputs
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
