# facmon: `make demo` runs the demo estate, `make test` runs the tests. Both install what is missing first:
# Debian packages (mosquitto, influxdb, mbpoll, postgresql) through apt-get, a virtualenv in .venv, and the project.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# binary:debian-package pairs the project needs on the machine
SYSTEM_DEPS := mosquitto:mosquitto mosquitto_pub:mosquitto-clients influxd:influxdb mbpoll:mbpoll chromium:chromium
DEMO_ARGS ?=
PYTEST_ARGS ?=
# The pure decision modules (rules, transitions, SLA and escalation policy): no I/O, every line reachable from a
# test, so `make check` holds them to 100 % coverage (the whole house to 90 %, pyproject's fail_under).
PURE_MODULES := rules/engine.py rules/state_rules.py rules/state_engine.py rules/windows.py \
	facmon/workorders/transitions.py facmon/workorders/sla.py \
	facmon/notifier/policy.py facmon/notifier/storm.py \
	collectors/modbus/conditions.py collectors/modbus/entrapment.py

# The Grafana scenario runs the whole system and its simulators in one event loop at 60 times speed: traced line by
# line it falls minutes behind, so `make check` runs it on its own, untraced (its code is covered by its packages' tests).
UNTRACED := tests/grafana/test_panel_queries.py

.PHONY: demo test check coverage lint types format deps venv bench screenshots clean

demo: deps venv
	$(BIN)/facmon up --demo --site examples/demo-site.yaml --scenario examples/demo-scenario.yaml $(DEMO_ARGS)

test: deps venv
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS)

# Everything CI holds a change to: lint, format, types, then the suite under coverage.
check: lint types coverage

# `make test` (the README's test command) with coverage (the Python processes it starts included), failing under 90 % overall, then under 100 %
# for each pure decision module (over a set of files 100 % in total is 100 % in each).
coverage: deps venv
	rm -f .coverage .coverage.*
	$(MAKE) test PYTEST_ARGS="--cov --cov-report=term-missing:skip-covered --ignore=$(UNTRACED) $(PYTEST_ARGS)"
	$(MAKE) test PYTEST_ARGS="$(UNTRACED) $(PYTEST_ARGS)"
	$(BIN)/coverage report --fail-under=100 --include="$$(echo $(PURE_MODULES) | tr ' ' ',')"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: venv
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The API benchmark drives the API with wrk (Debian package wrk).
bench: deps venv
	@command -v wrk >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends wrk; }
	$(BIN)/python benchmarks/run.py

# The pictures of the technician page in docs/ (headless Chromium on a 375 px wide phone screen).
screenshots: deps venv
	$(BIN)/python scripts/screenshot_tech_page.py

deps:
	@missing=""; \
	for pair in $(SYSTEM_DEPS); do \
	  bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || [ -x /usr/sbin/$$bin ] || missing="$$missing $$pkg"; \
	done; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "facmon needs Python 3.11 or newer")'

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

clean:
	rm -rf $(VENV) .facmon .pytest_cache .mypy_cache .ruff_cache *.egg-info .coverage .coverage.*
