# The two commands: `make demo` and `make test`. Each creates (or reuses) .venv and installs the
# core and every provider under providers/ in editable mode, pinned by constraints.txt; `make test`
# also installs the Node.js servers the tests start (Azurite), pinned by package-lock.json.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlport-installed
PROVIDER_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard providers/*/pyproject.toml))
EDITABLES := -e '.[test,lint]' -e tests/dummy_provider $(foreach dir,$(PROVIDER_DIRS),-e '$(dir)[test]')
# Pins build backends in pip's isolated build environments too.
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint bench install constraints clean

$(STAMP): pyproject.toml constraints.txt tests/dummy_provider/pyproject.toml $(wildcard providers/*/pyproject.toml)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "mlport needs Python >= 3.11; run: make PYTHON=python3.11 ...")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(EDITABLES)
	@touch $(STAMP)

NODE_STAMP := node_modules/.mlport-installed
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || (echo "make test needs Node.js and npm (for Azurite): apt-get install nodejs npm" >&2; exit 1)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

install: $(STAMP) $(NODE_STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart/run.py

test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pip check
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy src tests/dummy_provider/src $(foreach dir,$(PROVIDER_DIRS),$(dir)/src)

bench: $(STAMP)
	@command -v wrk >/dev/null || (apt-get update -q && apt-get install -y -q wrk)
	$(PY) benchmarks/import_time.py
	$(PY) benchmarks/serving.py
	$(PY) benchmarks/drift.py

# Re-pin: resolve from scratch in a throwaway venv and write what was installed.
constraints:
	rm -rf .venv-pin
	$(PYTHON) -m venv .venv-pin
	PIP_CONSTRAINT= .venv-pin/bin/pip install --quiet hatchling $(EDITABLES)
	( echo "# Pinned by 'make constraints' on $$(date -u +%Y-%m-%d) with $$($(PYTHON) --version)."; \
	  .venv-pin/bin/pip freeze --exclude-editable | grep -v '^-e' ) > constraints.txt
	rm -rf .venv-pin

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
