# Two commands matter: `make run` (console on the embedded default) and `make test` (whole suite, with all set-up).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
ADDRESS ?= 127.0.0.1

.PHONY: run test lint system-packages bench emulator clean

$(STAMP): requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	touch $(STAMP)

# Seeds the demo on first start, then runs the hourly scheduler beside the console until Ctrl-C.
run: $(STAMP)
	$(BIN)/python -m core demo
	$(BIN)/python -m core scheduler & trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.address $(ADDRESS)

# Everything a fresh Debian machine needs (CI: `bash .ci/run`), in this order: Debian packages (python3-venv, chromium,
# emoji font; apt-get only when one is missing), the venv, ruff and mypy, then the suite. The sub-make keeps the order
# under `make -j`: the venv is created only after python3-venv is there.
test: system-packages
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest -n 2 -q

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
