# geomtax developer entry points. Every target creates .venv and installs the project if needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
OUT    ?= results/demo
PYTEST_WORKERS ?= 2

.PHONY: help install demo test test-slow test-all bench docs lint format clean

help:
	@echo "make demo       run the main job (quick ablation; writes tables and figures under $(OUT))"
	@echo "make test       run the default test suite (excludes tests marked slow)"
	@echo "make test-slow  run only the slow accuracy/scale tests"
	@echo "make bench      run every benchmark at a small size (geomtax bench)"
	@echo "make docs       build the documentation site into site/"
	@echo "make lint       ruff check and ruff format --check on the Python sources"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,docs]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/geomtax ablation --preset quick --system lorenz --out $(OUT)

test: $(STAMP)
	$(PY) -m pytest -m "not slow" -n $(PYTEST_WORKERS) --durations=15

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

test-all: $(STAMP)
	$(PY) -m pytest -n $(PYTEST_WORKERS)

bench: $(STAMP)
	$(VENV)/bin/geomtax bench --size small --out results/bench

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

PY_SOURCES := geomtax tests benchmarks examples

lint: $(STAMP)
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)

format: $(STAMP)
	$(VENV)/bin/ruff format $(PY_SOURCES)

clean:
	rm -rf $(VENV) site results .pytest_cache
