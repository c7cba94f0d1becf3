# The commands of the README: `make demo`, `make test` and `make venv`. Each sets up .venv from pyproject.toml first.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test lint crds clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Powertrain needs Python 3.11 ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/powertrain demo

lint: $(STAMP)
	$(BIN)/ruff check operator agents tests e2e bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest

crds: $(STAMP)
	$(BIN)/powertrain crds --output-dir crds

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
