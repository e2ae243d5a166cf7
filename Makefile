# hospes: `make serve` runs the demo capsule, `make test` runs every check, `make check` the
# quick ones (no test marked slow), `make bench` the throughput benchmark.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# Extra flags for `hospes serve`, e.g. make serve ARGS="--host :: --hostname example.org"
ARGS ?=
# Flags for bench/run.py: hospes, Molly Brown, jetforce and the minimal responders, full and
# resumed handshakes with and without a client certificate, 5 rounds of 4 s (about 10 minutes);
# e.g. make bench BENCH_ARGS="--rounds 3 --duration 2 --servers hospes reference-fd-noticket"
BENCH_ARGS ?= --rounds 5 --duration 4

.PHONY: serve test check lint typecheck unit bench clean

# The stamp is written last: a set-up that was interrupted is redone from a clean venv.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv --clear $(VENV)
	$(PIP) -e .
	touch $@

# The test tools at the exact versions of constraints/test.txt, and the postgres extra (the
# store's suite runs on PostgreSQL too).
$(VENV)/.installed-test: $(VENV)/.installed constraints/test.txt
	$(PIP) -c constraints/test.txt -e '.[test,postgres]'
	touch $@

serve: $(VENV)/.installed
	$(BIN)/hospes serve $(ARGS)

test: lint typecheck unit

check: lint typecheck $(VENV)/.installed-test
	$(BIN)/pytest -m "not slow"

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

unit: $(VENV)/.installed-test
	$(BIN)/pytest

# bench/run.py compiles its load generator (bench/gemload.c) on first use: it needs cc, the
# OpenSSL headers (libssl-dev) and taskset. It installs its peers and tools itself, none of
# them a dependency of hospes: molly-brown with apt-get (as root), jetforce, matplotlib and a
# recent libssl (psycopg-binary) in throw-away virtualenvs under bench/.peers/.
bench: $(VENV)/.installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis bench/bin bench/.peers bench/results
