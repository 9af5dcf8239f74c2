# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat deploy/requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install kafka-jars postgres run test lint unit bench bench-env lock clean

$(STAMP): deploy/requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r deploy/requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

kafka-jars: install
	$(BIN)/python -m deploy.kafka.node jars

# The projection tests run on SQLite and on PostgreSQL, which the test session starts from
# Debian's binaries (or JOBLEDGER_TEST_PG_URL names a server): install them if missing
# (as root only), else say what is missing.
postgres: install
	$(BIN)/python -m tests.pgserver ensure

run: install kafka-jars
	$(BIN)/jobledger run

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

unit: install postgres
	$(BIN)/pytest tests/unit -q

test: install kafka-jars postgres lint
	$(BIN)/pytest

# The bench-only environment (Celery + Redis baseline), never on the service's dependencies.
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat deploy/bench-requirements.txt | cksum | cut -d' ' -f1)

$(BENCH_STAMP): deploy/bench-requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -r deploy/bench-requirements.txt
	rm -f $(BENCH_VENV)/.installed-* && touch $(BENCH_STAMP)

bench-env: $(BENCH_STAMP)

# make bench BENCH_ARGS=--quick for the short development run.
bench: install kafka-jars bench-env
	$(BIN)/python -m tests.bench.e2e --bench-python $(BENCH_VENV)/bin/python $(BENCH_ARGS)
	$(BIN)/python -m tests.bench.rebuild
	$(BIN)/python -m tests.bench.run_list

# Re-pin every dependency (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 -o deploy/requirements.lock

clean:
	rm -rf $(VENV) .venv-bench .jobledger
