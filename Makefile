# Two commands from a fresh clone: `make demo` (the main job, offline) and `make test`.
# Both create the virtual environment on first use, with the versions the suite last passed on
# (constraints.txt). To try the newest releases the pyproject bounds allow: `make upgrade`, then
# `make test` (and, if it passes, `make constraints` to pin them).
VENV ?= .venv
PYTHON ?= python3
CONSTRAINTS ?= constraints.txt
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint install upgrade constraints clean

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

upgrade: $(STAMP)
	$(BIN)/pip install -q --upgrade --upgrade-strategy eager -e '.[test]'

constraints: $(STAMP)
	{ grep '^#' $(CONSTRAINTS); $(BIN)/pip freeze --exclude-editable; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

demo: $(STAMP)
	$(BIN)/coral-ft bench digits-lt --jobs 2 --out runs/digits-bench

lint: $(STAMP)
	$(BIN)/ruff check coral_ft tests benchmarks

test: $(STAMP) lint
	$(BIN)/pytest

clean:
	rm -rf runs .pytest_cache
