# Plugyard: `make dev` runs the platform locally, `make test` runs every test.
# Both install what they need first (a virtualenv with the Python package, workerd from npm).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
NODE_DEPS := loader_worker/node_modules/.package-lock.json
# The portal's browser tests drive Debian's Chromium through Playwright (`playwright install`
# cannot download browsers here).
CHROMIUM := /usr/bin/chromium

.PHONY: dev test lint test-python test-gateway check-deploy install clean

install: $(VENV)/.installed $(NODE_DEPS)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(NODE_DEPS): loader_worker/package.json loader_worker/package-lock.json
	cd loader_worker && npm ci --no-audit --no-fund

$(CHROMIUM):
	apt-get update -qq && apt-get install -y -qq chromium

dev: install
	$(BIN)/plugyard dev

lint: install
	$(BIN)/ruff check platform tests $(wildcard bench)
	$(BIN)/ruff format --check platform tests $(wildcard bench)
	$(BIN)/mypy
	$(BIN)/lint-imports

test-gateway: install
	cd loader_worker && npm test

# Validates deploy/cloudflare/wrangler.jsonc offline (bundles the Worker, checks bindings).
check-deploy: install
	cd loader_worker && WRANGLER_SEND_METRICS=false npm run --silent check-deploy

test-python: install $(CHROMIUM)
	$(BIN)/pytest

test: lint test-gateway check-deploy test-python

clean:
	rm -rf $(VENV) loader_worker/node_modules .plugyard test-output
