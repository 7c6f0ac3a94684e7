# Two commands: `make up` (install, migrate, start the stack, run the demo) and `make test`.
# Installs come from the hashed lock files (requirements*.lock); `make lock` regenerates them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK_FLAGS := --generate-hashes --universal --python-version 3.11 --quiet
# Test processes: most tests wait on real workers, servers and sleeps, so more than the cores.
TEST_WORKERS ?= 4

.PHONY: up test lint install audit lock clean

up: install
	bash .ci/services.sh redis
	$(BIN)/conveyor up --demo

test: install
	bash .ci/services.sh redis postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	BIN=$(BIN) bash .ci/audit.sh
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal -m "not serial"
	$(BIN)/python -m pytest -m serial

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy .

audit: install
	BIN=$(BIN) bash .ci/audit.sh

install: $(VENV)/.installed

# The dev lock holds the runtime set plus the dev tools, at the same versions as
# requirements.lock (which the Dockerfile installs); the project itself goes in without deps.
$(VENV)/.installed: pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# After changing dependencies in pyproject.toml: re-resolve both locks (runtime pinned by dev).
lock: install
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_FLAGS) -o requirements-dev.lock
	$(BIN)/uv pip compile pyproject.toml -c requirements-dev.lock $(LOCK_FLAGS) -o requirements.lock

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
