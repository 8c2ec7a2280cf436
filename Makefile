# The project's interface: `make demo` and `make test` do all the set-up themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

SAMPLE_IMAGE ?= samples/kitchen-table.jpg
SAMPLE_PROMPT ?= Put a donut next to the flour.
DEMO_OUT ?= demo-output

.PHONY: help install sam asl-tools requirements build build-local demo test lint typecheck cfn-lint security unit integration browser browser-test bench bench-quick deploy put-key teardown clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(INSTALLED) sam asl-tools ## .venv with the package, the local-run extras and the dev tools; SAM CLI; AWS's ASL validators

# SAM CLI pins versions of its own, so it lives in a virtualenv of its own (as checkov does).
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet "aws-sam-cli>=1.170,<2"
	touch $@

sam: $(SAM_VENV)/.installed ## install the AWS SAM CLI into .venv-sam

# AWS's own checks of state machine definitions (the Amazon States Language service behind
# the AWS Toolkit, and asl-validator), from the npm registry into a folder of their own;
# node and npm from the distribution when missing. The local stack and the unit tests run them.
ASL_TOOLS := tools/asl
$(ASL_TOOLS)/node_modules/.installed: $(ASL_TOOLS)/package.json $(ASL_TOOLS)/package-lock.json
	@command -v npm >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nodejs npm; }
	cd $(ASL_TOOLS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

asl-tools: $(ASL_TOOLS)/node_modules/.installed ## install AWS's ASL validators into tools/asl/node_modules

requirements: $(INSTALLED) ## derive layers/common/requirements.txt from pyproject.toml
	$(BIN)/python -m kontext_tools.layer_requirements

# sam build needs the runtime's Python (3.12) to resolve wheels; build.py finds it (pyenv).
# The functions' instruction set: sam build must build the binaries (pydantic-core,
# cryptography) for the architecture sam deploy gives the functions, so both steps take it
# from here (make build deploy ARCHITECTURE=x86_64), never from a prompt in between.
ARCHITECTURE ?= arm64
# More template parameters for make deploy, as sam takes them: PARAMETERS="CompletionMode=webhook"
PARAMETERS ?=

build: $(INSTALLED) sam ## sam build (ARCHITECTURE, default arm64; .aws-sam/build, what make deploy ships) + sam validate --lint
	$(BIN)/python -m kontext_tools.layer_requirements --check
	$(BIN)/python -m kontext_tools.local.build --release --architecture $(ARCHITECTURE)

build-local: $(INSTALLED) sam ## sam build for this machine (.aws-sam/build-local): what the local run executes
	$(BIN)/python -m kontext_tools.local.build

demo: $(INSTALLED) asl-tools build-local ## run the whole pipeline locally on the sample image and print where results are
	$(BIN)/kontext-pipeline local --image "$(SAMPLE_IMAGE)" --prompt "$(SAMPLE_PROMPT)" \
		--num-images 2 --output-format png --out "$(DEMO_OUT)"

CHECKOV_VENV := .venv-checkov

test: lint typecheck cfn-lint security build unit integration browser-test ## everything CI runs

# The complexity gate: no function, method or class of radon grade C or worse (CC > 10),
# no module worse than B, the average grade A. Sizes (300-line modules, 40-line functions)
# are held by tests/unit/test_code_shape.py.
XENON := $(BIN)/xenon --max-absolute B --max-modules B --max-average A

lint: $(INSTALLED) ## ruff lint + format check, and the complexity gate (xenon)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(XENON) layers/common/kontext_pipeline functions src benchmarks

typecheck: $(INSTALLED) ## mypy, strict on the package
	$(BIN)/mypy

cfn-lint: $(INSTALLED) ## validate template.yaml
	$(BIN)/cfn-lint template.yaml

# checkov pins its own dependency versions, so it lives in a virtualenv of its own.
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet "checkov>=3.2,<4"
	touch $@

security: $(CHECKOV_VENV)/.installed ## checkov on template.yaml (skips explained in .checkov.yaml)
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --config-file .checkov.yaml

unit: $(INSTALLED) asl-tools build ## unit tests (the packaging tests read the release build)
	$(BIN)/pytest tests/unit -q

integration: $(INSTALLED) asl-tools build-local ## the built functions and the real state machine on moto, with the model emulator
	$(BIN)/pytest tests/integration -q

# The results page is tested in a real headless Chromium; Debian's packages, since
# browser downloads by Playwright or Selenium Manager cannot reach their hosts here.
browser: ## install chromium + chromium-driver with apt-get when missing
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver; }

browser-test: browser $(INSTALLED) ## index.html in headless Chromium (screenshots in tests/artifacts/)
	$(BIN)/pytest tests/browser -q

bench: $(INSTALLED) ## benchmarks: print figures (about 20 minutes); BENCH_ARGS=--save writes benchmarks/results/ and the README
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

bench-quick: $(INSTALLED) ## the same benchmarks, smaller (a few minutes)
	$(BIN)/python -m benchmarks.run --quick $(BENCH_ARGS)

STACK ?= kontext-pipeline

deploy: build ## sam build + sam deploy of what the tests ran (needs AWS credentials)
	$(SAM) deploy --stack-name "$(STACK)" --parameter-overrides Architecture=$(ARCHITECTURE) $(PARAMETERS)

put-key: $(INSTALLED) ## store the model's API key (FAL_KEY, or asked for) in the stack's secret
	$(BIN)/kontext-pipeline put-key --stack "$(STACK)"

teardown: $(INSTALLED) ## delete the stack; KEEP_BUCKET=1 keeps the images bucket and its objects
	$(BIN)/kontext-pipeline teardown --stack "$(STACK)" $(if $(KEEP_BUCKET),--keep-bucket,)

clean: ## remove the virtualenv and local outputs
	rm -rf $(VENV) $(CHECKOV_VENV) $(SAM_VENV) .aws-sam $(DEMO_OUT) .pytest_cache .mypy_cache .ruff_cache
