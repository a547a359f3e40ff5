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

SAMPLES := src/restorekit/samples

demo: install
	$(BIN)/restorekit restore $(SAMPLES)/noisy-gray.png $(SAMPLES)/noisy-color.png -o demo-out --overwrite
	$(BIN)/restorekit compare $(SAMPLES)/noisy-gray.png demo-out/noisy-gray.png --ref $(SAMPLES)/clean-gray.png \
		--labels noisy restored -o demo-out/compare-gray.png --overwrite
	$(BIN)/restorekit compare $(SAMPLES)/noisy-color.png demo-out/noisy-color.png --ref $(SAMPLES)/clean-color.png \
		--labels noisy restored -o demo-out/compare-color.png --overwrite
	@echo "restored images and side-by-side comparisons are in demo-out/"

test: install-test
	$(BIN)/python -m pytest

bench: install
	$(BIN)/restorekit bench --models dncnn-s --size 512 512

clean:
	rm -rf $(VENV) demo-out .pytest_cache
