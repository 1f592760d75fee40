PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(STAMP)

## demo: set up and run the main job on embedded defaults (state in ./.alphaloop-demo)
demo: $(STAMP)
	ALPHALOOP_HOME=$(CURDIR)/.alphaloop-demo $(BIN)/alphaloop demo

## test: set up and run every test, the layer contract and the linter
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_backtest.py

clean:
	rm -rf $(VENV) .alphaloop-demo .pytest_cache .ruff_cache .hypothesis
