# The two commands of the README: `make run` and `make test`. Both set up .venv when needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)

.PHONY: run test lint bench-ingest bench-sim setup web

setup: $(STAMP)

$(STAMP):
	@bash deploy/bootstrap.sh "$(PYTHON)" "$(VENV)"
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/twin demo

test: $(STAMP)
	$(PY) -m ruff check twin streams adapters replay tests conftest.py
	$(PY) -m mypy
	$(PY) -m pytest -m "not slow" -q --durations=40

lint: $(STAMP)
	$(PY) -m ruff check twin streams adapters replay tests conftest.py
	$(PY) -m mypy

bench-ingest: $(STAMP)
	$(VENV)/bin/twin bench ingest --events 200000 --json

bench-sim: $(STAMP)
	$(VENV)/bin/twin bench sim --cells 57 --ues 5000 --json

# Rebuilds the dashboard (web/, Vite + uPlot from npm) into twin/api/static/, which is committed so an
# install needs no npm; tests/dashboard/test_build.py fails when web/ changed without this.
web:
	cd web && npm ci --no-audit --no-fund && npm run build
