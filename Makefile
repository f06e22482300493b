# `make demo` and `make test` work on a fresh machine with Python 3.11+, make and PyPI.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test check lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

demo: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[models]'
	$(BIN)/mloop demo

test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

check: test

bench: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/tracking.py

clean:
	rm -rf $(VENV) .mloop .pytest_cache .mypy_cache .ruff_cache
