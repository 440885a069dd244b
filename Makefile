# The two entry points of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test demo lint bench system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/coldrelay serve

# coldrelay and a simulated world of receivers on 127.0.0.1, a day's campaign, the dashboard left up.
demo: $(STAMP) system-deps
	$(BIN)/python tests/world/demo.py

system-deps:
	@sh scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: $(STAMP) system-deps lint
	$(BIN)/python -m coldrelay.errors.check_entries
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/explain.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
