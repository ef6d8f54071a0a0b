# `make demo` and `make test` set everything up themselves: a .venv with the project and its
# extras, Graphviz's `dot` and (for the browser tests) Chromium from the system's package
# manager where they can be installed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo graph notebook bench mutation lint docs docs-serve graphviz chromium clean

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

# Debian's chromium for the browser tests (never a browser downloaded by a tool)
chromium:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing Chromium (for the browser tests) with apt-get"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "Chromium is missing: run 'sudo apt-get install chromium' for the browser tests"; \
	  echo "(they are skipped with that message without it)"; \
	fi

test: setup chromium
	$(BIN)/python -m pytest

demo: setup
	$(BIN)/python -m demos.notebook

graph: setup
	$(BIN)/python -m demos.graph

notebook: setup
	PYTHONPATH=$(CURDIR) $(BIN)/jupyter nbconvert --to html --execute demos/walkthrough.ipynb \
	  --TemplateExporter.extra_template_basedirs=demos/templates --template offline \
	  --output-dir out --output walkthrough
	@echo "Wrote out/walkthrough.html; to open the notebook itself: pip install '.[notebook]' and"
	@echo "jupyter lab demos/walkthrough.ipynb"

docs: setup
	PYTHONPATH=$(CURDIR) NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict
	@echo "Wrote site/index.html; make docs-serve to browse it"

docs-serve: setup
	PYTHONPATH=$(CURDIR) NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

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
	rm -rf $(VENV) out site .cache .pytest_cache .hypothesis
