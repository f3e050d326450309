# Two commands for a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := data/sample
ADMIN_KEY_FILE := var/admin.key
TRAINED := var/.trained-sample
LOADED := var/.loaded-sample
HISTORY := var/.history-sample
REFRESHED := var/.refreshed-sample

.PHONY: install browser test lint run sample train load clean

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

# Debian's Chromium for the console's browser tests (Playwright drives it; no browser download).
# Where it cannot be installed (no apt, not root, offline) those tests skip with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	  apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1) || \
	  echo "chromium could not be installed: the console's browser tests will skip"

test: install browser
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

sample: $(SAMPLE)/events.parquet

$(SAMPLE)/events.parquet: | $(STAMP)
	$(BIN)/recsys generate --users 3000 --items 800 --out $(SAMPLE) --seed 7 --force

# Train and register once per sample/config change; `make train` forces a new run.
$(TRAINED): $(SAMPLE)/events.parquet configs/train.yaml | $(STAMP)
	$(BIN)/recsys train --config configs/train.yaml
	@mkdir -p var && touch $@

train: sample
	$(BIN)/recsys train --config configs/train.yaml
	@mkdir -p var && touch $(TRAINED)

# The sample catalogue and customers in the store (upserts: safe to repeat), so that
# GET /v1/items/{id} and GET /v1/users/{id} answer right away; `make load` forces it.
$(LOADED): $(SAMPLE)/events.parquet | $(STAMP)
	$(BIN)/recsys import items $(SAMPLE)/items.parquet --no-progress
	$(BIN)/recsys import users $(SAMPLE)/users.parquet --no-progress
	@mkdir -p var && touch $@

load: sample
	@rm -f $(LOADED)
	@$(MAKE) --no-print-directory $(LOADED)

# The shop's past events in the store, once (events are appended, not upserted: `make clean`
# starts over), then one batch refresh: profiles, RFM groups and the example segments have
# members from the start, and the shipped campaigns (e.g. win-back for "At Risk") send at once.
$(HISTORY): $(SAMPLE)/events.parquet | $(STAMP)
	$(BIN)/recsys import events $(SAMPLE)/events.parquet --no-progress
	@mkdir -p var && touch $@

$(REFRESHED): $(TRAINED) $(LOADED) $(HISTORY)
	$(BIN)/recsys segments load configs/segments
	$(BIN)/recsys segments refresh
	@touch $@

run: $(TRAINED) $(LOADED) $(REFRESHED)
	$(BIN)/recsys segments load configs/segments
	$(BIN)/recsys serve --admin-key-file $(ADMIN_KEY_FILE)

clean:
	rm -rf $(VENV) var $(SAMPLE) .pytest_cache .ruff_cache
