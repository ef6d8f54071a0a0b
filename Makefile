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

# A program from Debian's packages: $(1) the command, $(2) the package, $(3) what it is for.
# Installed with apt-get where this runs as root; otherwise the command to run is printed.
define from_debian
	@if command -v $(1) >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Installing $(2) with apt-get ($(3))"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	else \
	  echo "$(1) is missing: run 'sudo apt-get install $(2)' ($(3); what needs it is skipped"; \
	  echo "with that message without it)"; \
	fi
endef

graphviz:
	$(call from_debian,dot,graphviz,to render graphs)

chromium:  # Debian's browser, never one downloaded by a tool
	$(call from_debian,chromium,chromium,for the browser tests)

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
