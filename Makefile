# The two commands of the README: `make run` and `make test`.
#   make run   the daemon's own dependencies, a development configuration, PKI, SQLite store, then serve
#   make test  everything the suite needs (system packages included, through .ci/run), then the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= data/gateway.toml

.PHONY: run test test-fast test-durations depgraph check lint install install-test init clean bytecode

# The daemon alone: no compiler, no smart-card headers (the card agent's extra is installed by `make test`).
$(BIN)/gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $(BIN)/gateway

install: $(BIN)/gateway

# What the suite needs on top (test tools, the card agent's pyscard, built against libpcsclite-dev).
$(VENV)/.test-installed: $(BIN)/gateway pyproject.toml
	$(BIN)/pip install -q -e '.[test,card]'
	touch $@

install-test: $(VENV)/.test-installed

# The package's compiled modules, written once: where PYTHONDONTWRITEBYTECODE is set (CI images often set it),
# every gateway process the suite starts would otherwise compile the whole package again (~1 s of a core each).
bytecode: $(BIN)/gateway
	$(BIN)/python -m compileall -q gateway >/dev/null

$(CONFIG): | $(BIN)/gateway
	$(BIN)/gateway init --data data

init: $(CONFIG)

run: install init bytecode
	$(BIN)/gateway dev-stack --data $(dir $(CONFIG))

# The same script CI runs: system packages (apt-get as root), a throw-away PostgreSQL on loopback, then `check`.
test:
	bash .ci/run

# Lint, types and the suite, on what is already installed.
check: install-test bytecode
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy gateway
	$(BIN)/pytest -q -p no:cacheprovider --durations=20 $(PYTEST_ARGS)

# A local loop: no test marked slow.
test-fast: install-test bytecode
	$(BIN)/pytest -q -p no:cacheprovider -m 'not slow' $(PYTEST_ARGS)

# The fast set's slowest tests: one over 2 s, or one that starts a process, gets @pytest.mark.slow.
test-durations: install-test bytecode
	$(BIN)/pytest -q -p no:cacheprovider -m 'not slow' --durations=25 $(PYTEST_ARGS)

# Which package imports which, the cycles, and the long files and functions (tests/architecture holds the order).
depgraph:
	$(PYTHON) tools/depgraph.py

lint: install-test
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy gateway

clean:
	rm -rf $(VENV) data
