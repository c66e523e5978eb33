# jitad: two commands matter. `make demo` runs the whole thing on one machine;
# `make test` installs what it needs and runs every test against real parts.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)

.PHONY: help deps venv test demo bench migrate clean

help:
	@echo "make demo   - throwaway Samba DC + web + worker + beat on 127.0.0.1 (Ctrl-C stops all)"
	@echo "make test   - install everything needed and run all tests"
	@echo "make bench  - measure grant/revocation latency (Samba DC), portal/API latency under 50 users and the admin lists with 100k requests (writes docs/benchmarks.md)"

# System packages (Debian's, as root): a Samba AD DC for tests and the demo, Chromium for
# the browser tests (Playwright drives it; it never downloads a browser), and redis-server,
# which the broker-outage tests start and stop on a port of their own; rsyslog with its GnuTLS
# stream driver, the syslog-over-TLS receiver the SIEM tests start; systemd (systemd-analyze) and
# nginx, whose checkers test the unit files and the site in ops/ (tests/test_ops_units.py). nginx's
# package would start a server on port 80 of every address: it is installed with services
# refused (policy-rc.d, as Debian's container images have it) and never started here.
# postgresql-client: pg_dump and pg_restore, which the backup checks and their round-trip test use
# (the host server's version).
deps:
	@missing=""; \
	command -v samba-tool >/dev/null 2>&1 && command -v samba >/dev/null 2>&1 || missing="$$missing samba-ad-dc samba-ad-provision"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v rsyslogd >/dev/null 2>&1 || missing="$$missing rsyslog"; \
	dpkg -s rsyslog-gnutls >/dev/null 2>&1 || missing="$$missing rsyslog-gnutls"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	pg_dump --version >/dev/null 2>&1 && pg_restore --version >/dev/null 2>&1 || missing="$$missing postgresql-client"; \
	if [ -n "$$missing" ]; then \
	  echo "installing from Debian's packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then \
	  echo "installing from Debian's packages: nginx (not started)"; \
	  made=""; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; made=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null; rc=$$?; \
	  if [ -n "$$made" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	  exit $$rc; \
	fi

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

# The suite runs in TEST_PROCESSES processes (pytest-xdist), a file at a time each; every process
# has its own Samba DC (on a loopback address of its own), worker, database and broker (tests/settings.py).
# In two parts, as one process orders them: the tests that need no committed rows, then the
# transactional ones with the session's worker (tests/conftest.py, --part). Both parts always run;
# "no tests" (exit 5) in a part is not a failure. TEST_PROCESSES=0 runs it all in this one process.
TEST_PROCESSES ?= 2
PYTEST := JITAD_VAR_DIR=$(CURDIR)/var/test $(BIN)/python -m pytest

test: deps venv
ifeq ($(TEST_PROCESSES),0)
	$(PYTEST) $(PYTEST_ARGS)
else
	@rc=0; \
	for part in db live; do \
	  echo "== make test: the $$part part, in $(TEST_PROCESSES) processes"; \
	  $(PYTEST) -n $(TEST_PROCESSES) --dist loadfile --part=$$part $(PYTEST_ARGS); r=$$?; \
	  if [ $$r -ne 0 ] && [ $$r -ne 5 ]; then rc=$$r; fi; \
	done; \
	exit $$rc
endif

demo: deps venv
	$(BIN)/python ops/demo.py

bench: deps venv
	JITAD_VAR_DIR=$(CURDIR)/var/bench $(BIN)/python bench/run.py

migrate: venv
	$(BIN)/python manage.py migrate

clean:
	rm -rf var test-artifacts
