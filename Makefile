# `make demo` and `make test` each set up everything on a fresh machine, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned so that pip never swaps it for a different build;
# override with e.g. `make test TORCH=torch` to take whatever your index serves.
TORCH ?= torch==2.13.0
EXTRAS ?= test

.PHONY: demo test install clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/cyclegan demo

test: install
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) runs demo_out
