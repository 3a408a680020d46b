# Two commands from a fresh clone: `make demo` (the main job, offline) and `make test`.
# Both create the virtual environment on first use; pip resolves torch and torchvision together.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/coral-ft bench digits-lt --out runs/digits-bench

test: $(STAMP)
	$(BIN)/pytest

clean:
	rm -rf runs .pytest_cache
