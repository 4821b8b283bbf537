# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= data/gateway.toml

.PHONY: run test lint install init clean

$(BIN)/gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,card]'
	touch $(BIN)/gateway

install: $(BIN)/gateway

$(CONFIG): | $(BIN)/gateway
	$(BIN)/gateway init --data data

init: $(CONFIG)

run: install init
	$(BIN)/gateway serve --config $(CONFIG) --banner

test: install
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy gateway
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check gateway tests bench
	$(BIN)/mypy gateway

clean:
	rm -rf $(VENV) data
