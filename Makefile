# `make demo` and `make test` set everything up themselves: a .venv with the project and its
# extras, and Graphviz's `dot` from the system's package manager where it can be installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo graph notebook bench mutation lint graphviz clean

setup: $(STAMP) graphviz

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "python3 -m venv failed: run 'sudo apt-get install python3-venv' and retry"; exit 1; fi; }

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

graphviz:
	@if command -v dot >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Graphviz (dot) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	else \
	  echo "Graphviz's dot is missing: run 'sudo apt-get install graphviz' to render graphs"; \
	  echo "(everything else works without it; graph renders are skipped with that message)"; \
	fi

test: setup
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python -m demos.notebook

graph: setup
	$(BIN)/python -m demos.graph

notebook: setup
	$(BIN)/python -m pip install -q nbconvert
	PYTHONPATH=$(CURDIR) $(BIN)/jupyter nbconvert --to html --execute demos/walkthrough.ipynb \
	  --output-dir out --output walkthrough
	@echo "Wrote out/walkthrough.html; to open the notebook itself: pip install '.[notebook]' and"
	@echo "jupyter lab demos/walkthrough.ipynb"

bench: setup
	$(BIN)/python -m benchmarks

mutation: setup
	$(BIN)/python -m pip install -q mutmut
	rm -rf mutants
	HYPOTHESIS_PROFILE=mutation $(BIN)/mutmut run
	$(BIN)/mutmut results

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
