# The two commands of the README quick start. Each first runs the idempotent environment setup.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: setup demo test bench lint

setup:
	@VENV=$(VENV) scripts/setup_dev_env.sh

demo: setup
	$(PYTHON) -m robot_vision demo

test: setup
	$(PYTHON) -m pytest

bench: setup
	$(PYTHON) -m benchmarks

lint: setup
	$(PYTHON) -m ruff check .
