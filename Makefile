# Two commands matter: `make run` (console on the embedded default) and `make test` (whole suite, with all set-up,
# on SQLite and then on a throwaway PostgreSQL).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: run test test-postgres lint migrate system-packages bench emulator clean

$(STAMP): requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

# Seeds the demo on first start, then runs the scheduler (queues due syncs) and a worker (runs queued syncs) beside
# the console until Ctrl-C; stopping sends SIGTERM, so running syncs reach a page end and go back to the queue.
run: $(STAMP)
	$(BIN)/python -m core migrate
	$(BIN)/python -m core demo
	$(BIN)/python -m core scheduler & scheduler=$$!; $(BIN)/python -m core worker & worker=$$!; \
	trap 'kill $$scheduler $$worker 2>/dev/null; wait' EXIT INT TERM; \
	$(BIN)/python -m streamlit run ui/server.py --server.port $(PORT) --server.address $(ADDRESS)

# Everything a fresh Debian machine needs (CI: `bash .ci/run`), in this order: Debian packages (python3-venv, chromium,
# emoji font, postgresql; apt-get only when one is missing), the venv, ruff and mypy, then the suite on SQLite, then
# the suite on PostgreSQL. The sub-makes keep the order under `make -j`: the venv is created only after python3-venv is
# there.
test: system-packages
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -n 2 -q
	$(MAKE) --no-print-directory test-postgres

# The suite on PostgreSQL: tests/support/pg_cluster.py initdb's a throwaway cluster (Debian's postgresql, a temp dir, a
# free loopback port), sets TEST_DATABASE_URL for pytest, then stops and removes the cluster whatever the outcome.
test-postgres: $(STAMP)
	$(BIN)/python -m tests.support.pg_cluster $(BIN)/python -m pytest -n 2 -q

# Upgrade the database (DATABASE_URL, or the embedded default) to the newest schema; every command also does at start.
migrate: $(STAMP)
	$(BIN)/python -m core migrate

# Static checks only (mypy takes its file list from pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

system-packages:
	PY=$(PY) bash .ci/install-system-packages

bench: $(STAMP)
	$(BIN)/python -m bench

emulator: $(STAMP)
	$(BIN)/python -m halo_emulator --port 8765 --seed 7 --invoices 5000

clean:
	rm -rf $(VENV) data/*.db data/*.key
