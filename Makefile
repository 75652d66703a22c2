# `make demo` and `make test` each set up everything on a fresh machine, then run.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and pinned so that pip never swaps it for a different build;
# override with e.g. `make test TORCH=torch` to take whatever your index serves.
TORCH ?= torch==2.13.0
EXTRAS ?= test,web,onnx,metrics,video,medical,hub,wandb,mlflow,tensorboard

.PHONY: demo test install chromium clean

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/cyclegan demo

# The browser tests drive Debian's chromium (never a browser downloaded by playwright). If it cannot be
# installed here they are skipped, saying why, and the rest of the suite still runs; under CI=true
# (.ci/run) that is an error instead, so that CI never passes without them.
# apt needs root: through `sudo -n` (no password prompt) when not run as root.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
chromium:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| { if [ "$$CI" = true ]; then \
			echo "error: CI=true needs chromium for the browser tests, and 'apt-get install -y chromium' failed; install it in the CI image" >&2; exit 1; \
		fi; echo "warning: could not install chromium (apt-get install -y chromium); the browser tests will be skipped"; }

# Two test processes, one thread each: on two cores this beats one process with two threads,
# whose OpenMP threads spin against each other on tiny models.
test: install chromium
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 tests

clean:
	rm -rf $(VENV) runs demo_out
