# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := data/sample

.PHONY: install test lint run sample clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "recsys needs Python >= 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# constraints/cpu.txt pins the CPU wheel of torch; a bare `torch` would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints/cpu.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints/cpu.txt -e '.[cpu,dev]'
	@touch $@

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

sample: $(SAMPLE)/events.parquet

$(SAMPLE)/events.parquet: | $(STAMP)
	$(BIN)/recsys generate --users 3000 --items 800 --out $(SAMPLE) --seed 7 --force

run: sample
	@echo "== serving is not built yet: evaluating the baselines on the sample shop instead =="
	$(BIN)/recsys evaluate --interactions $(SAMPLE)/events.parquet --models pop,itemknn,ease --k 10,20

clean:
	rm -rf $(VENV) var $(SAMPLE) .pytest_cache .ruff_cache
