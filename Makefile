# The two commands: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
WALLET_PORT ?= 8001

.PHONY: install run test test-postgres system-deps lint audit typecheck bench lock docs clean
# The PostgreSQL server the second test run uses; each test environment gets a new database.
TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432

install: $(STAMP)

# Versions come from requirements.lock (constraints); `make lock` rewrites it after a
# change to the dependencies in pyproject.toml.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $(STAMP)

lock: install $(VENV)/.bench-installed
	$(BIN)/python scripts/lock.py

# The service, plus a demo citizen enrolled in var/demo-wallet and that wallet's page
# (the citizen's phone) on WALLET_PORT; prints both addresses and the demo PINs.
# The address the service names in its tokens, certificates and pages: where it listens,
# unless EID_PUBLIC_URL says otherwise (a proxy in front, say).
DEMO_URL = http://$(if $(filter 0.0.0.0,$(HOST)),127.0.0.1,$(HOST)):$(PORT)

run: install
	EID_PUBLIC_URL="$${EID_PUBLIC_URL:-$(DEMO_URL)}" $(BIN)/eid init
	EID_PUBLIC_URL="$${EID_PUBLIC_URL:-$(DEMO_URL)}" HOST=$(HOST) PORT=$(PORT) WALLET_PORT=$(WALLET_PORT) \
		$(BIN)/python scripts/demo.py

system-deps:
	bash scripts/system-deps.sh

# Two pytest workers (pytest-xdist): the suite waits on real servers and subprocesses
# as much as it computes, so two workers on two cores take about 60% of the time.
TEST_WORKERS ?= 2

test: install system-deps lint audit
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# The whole suite again against PostgreSQL (needs a server at TEST_POSTGRES_URL).
test-postgres: install system-deps
	TEST_POSTGRES_URL=$(TEST_POSTGRES_URL) $(BIN)/python -m pytest -q -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# pip-audit over the installed dependencies; accepted findings in audit-ignore.txt.
# Skips with a message (exit 0) when the vulnerability service cannot be reached.
audit: install
	$(BIN)/python scripts/audit.py

# Every benchmark against freshly started servers (about 17 minutes, a 10-minute soak
# included); rewrites the results section of docs/benchmarks.md and its chart.
bench: install system-deps $(VENV)/.bench-installed
	$(BIN)/python bench/run_all.py

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[test,bench]'
	touch $@

docs: install
	$(BIN)/eid config docs > docs/configuration.md

clean:
	rm -rf $(VENV) var .pytest_cache
