# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat deploy/requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install kafka-jars run test lint unit bench lock clean

$(STAMP): deploy/requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r deploy/requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

kafka-jars: install
	$(BIN)/python -m deploy.kafka.node jars

run: install kafka-jars
	$(BIN)/jobledger run

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit -q

test: install kafka-jars lint
	$(BIN)/pytest

bench: install kafka-jars
	$(BIN)/python -m tests.bench.e2e

# Re-pin every dependency (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 -o deploy/requirements.lock

clean:
	rm -rf $(VENV) .jobledger
