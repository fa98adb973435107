# The two commands a newcomer needs:
#   make demo  — set up .venv (CPU torch first if none), then a short tour of every part (out/demo/)
#   make test  — same set-up, then ruff and pytest
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.foundry-installed

.PHONY: demo test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	# the distribution was renamed foundry -> foundry-systems: drop the old one from an existing venv
	$(BIN)/python -m pip uninstall -q -y foundry 2>/dev/null || true
	$(BIN)/python -m pip install -q -e ".[all,dev]"
	touch $(STAMP)

demo: $(STAMP)
	OMP_NUM_THREADS=1 PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

test: $(STAMP)
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -n auto
