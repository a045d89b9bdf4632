# The two commands of the README: `make run` (the whole gateway on this host) and `make test`.
# Each installs what it needs first (scripts/bootstrap.sh is idempotent and cached).
.PHONY: setup run test test-fast lint bench eval clean

VENV := .venv
PY := $(VENV)/bin/python
PYTEST_WORKERS ?= 2

setup:
	@scripts/bootstrap.sh

run: setup
	$(VENV)/bin/endcap run

test: setup lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests

lint: setup
	$(VENV)/bin/ruff check $(wildcard services ota provisioning models) tests bench

test-fast: setup
	$(PY) -m pytest -n $(PYTEST_WORKERS) tests/unit

bench: setup
	$(PY) -m bench

# The offers model's full evaluation on Complete Journey (~3 min): baselines, blend, calibration gate.
eval: setup
	$(VENV)/bin/endcap-model report --tune --out-dir build/eval

clean:
	rm -rf $(VENV) .stamps build *.egg-info
