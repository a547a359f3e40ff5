# Two commands do all the set-up on a fresh machine:
#   make demo   restore a sample image with the built-in default model
#   make test   run the test suite
# Both create .venv with the CPU build of PyTorch (pinned in constraints.txt) on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: demo test install install-test bench clean

$(BIN)/restorekit: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e .
	@touch $@

install: $(BIN)/restorekit

$(VENV)/.test-deps: $(BIN)/restorekit
	$(PIP) install -q -c constraints.txt -e ".[test]"
	@touch $@

install-test: $(VENV)/.test-deps

demo: install
	$(BIN)/restorekit restore src/restorekit/samples/noisy-gray.png src/restorekit/samples/noisy-color.png -o demo-out --overwrite
	@echo "restored images are in demo-out/"

test: install-test
	$(BIN)/python -m pytest

bench: install
	$(BIN)/restorekit bench --models dncnn-s --size 512 512

clean:
	rm -rf $(VENV) demo-out .pytest_cache
