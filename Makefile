# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The strict editable install links each source file, so a new module needs a re-install: the link
# stamp depends on every source file and re-links (no dependency changes) when one is added.
SOURCES := $(shell find weightzoo zoo metanets hyper analysis datasets -name '*.py' 2>/dev/null)
LINKED  := $(VENV)/.linked

.PHONY: install demo test test-fast bench lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: a bare torch requirement could pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]" --config-settings editable_mode=strict
	touch $(STAMP)

$(LINKED): $(STAMP) $(SOURCES)
	flock $(VENV)/.lock $(BIN)/pip install -q --no-deps -e . --config-settings editable_mode=strict
	touch $(LINKED)

install: $(LINKED)

demo: $(LINKED)
	$(BIN)/weightzoo demo --out ./demo-out

test: $(LINKED)
	$(BIN)/pytest --import-mode=importlib tests

test-fast: $(LINKED)
	$(BIN)/pytest --import-mode=importlib -m "not slow" tests

bench: $(LINKED)
	$(BIN)/python benchmarks/ingest.py

lint: $(LINKED)
	$(BIN)/ruff check weightzoo zoo metanets hyper analysis datasets tests benchmarks

typecheck: $(LINKED)
	cd /tmp && $(CURDIR)/$(BIN)/mypy --config-file $(CURDIR)/pyproject.toml --cache-dir $(CURDIR)/.mypy_cache -p weightzoo

clean:
	rm -rf $(VENV) demo-zoo build dist *.egg-info
