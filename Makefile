# jitad: two commands matter. `make demo` runs the whole thing on one machine;
# `make test` installs what it needs and runs every test against real parts.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The venv installs from the lock files (every package pinned with its hashes), never from the
# loose requirements files: a reinstall happens when the lock changes. `make lock` regenerates the
# locks from requirements.txt and requirements-dev.txt; the locks record the digest of those two
# files, and `make venv` refuses a lock made from other versions of them.
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
STAMP := $(VENV)/.installed-$(shell cat $(DEV_LOCK) | sha1sum | cut -c1-12)
LOCK_INPUTS = $(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-40)
# The resolver behind `make lock` (in a venv of its own; installs never need it: pip reads the locks).
UV_VERSION := 0.13.8
LOCK_VENV := .venv-lock
UV_COMPILE = $(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --no-header

.PHONY: help deps venv lock lock-check test demo bench migrate clean

help:
	@echo "make demo   - throwaway Samba DC + web + worker + beat on 127.0.0.1 (Ctrl-C stops all)"
	@echo "make test   - install everything needed and run all tests"
	@echo "make lock   - regenerate requirements.lock and requirements-dev.lock after editing requirements*.txt"
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
# MIT Kerberos' headers and krb5-config with a C compiler (pip builds the gssapi, pykerberos and
# krb5 bindings from source: they ship no Linux wheels) and its client tools (kinit, klist) for
# checking a keytab.
deps:
	@missing=""; \
	command -v samba-tool >/dev/null 2>&1 && command -v samba >/dev/null 2>&1 || missing="$$missing samba-ad-dc samba-ad-provision"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v rsyslogd >/dev/null 2>&1 || missing="$$missing rsyslog"; \
	dpkg -s rsyslog-gnutls >/dev/null 2>&1 || missing="$$missing rsyslog-gnutls"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	pg_dump --version >/dev/null 2>&1 && pg_restore --version >/dev/null 2>&1 || missing="$$missing postgresql-client"; \
	dpkg -s libkrb5-dev >/dev/null 2>&1 || missing="$$missing libkrb5-dev"; \
	command -v klist >/dev/null 2>&1 || missing="$$missing krb5-user"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc"; \
	dpkg -s python3-dev >/dev/null 2>&1 || missing="$$missing python3-dev"; \
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

# pip as Python's own venv brings it (an upgrade from the index would be the one unhashed package).
$(STAMP): $(DEV_LOCK) requirements.txt requirements-dev.txt
	@$(MAKE) --no-print-directory lock-check
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/pip check
	rm -f $(VENV)/.installed-*
	touch $@

venv: $(STAMP)

lock-check:
	@for f in $(LOCK) $(DEV_LOCK); do \
	  grep -qx "# inputs: $(LOCK_INPUTS)" $$f 2>/dev/null || { \
	    echo "$$f was not made from the current requirements.txt and requirements-dev.txt: run 'make lock' and commit both .lock files" >&2; exit 1; }; \
	done

# One command after any change to requirements*.txt (also after merging branches that each
# changed them): the runtime lock first, then the test lock constrained to the runtime's versions.
lock:
	test -x $(LOCK_VENV)/bin/uv || { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install -q uv==$(UV_VERSION); }
	@inputs=$(LOCK_INPUTS); \
	head="# Generated by 'make lock' (uv $(UV_VERSION) pip compile --universal --generate-hashes); do not edit.\n# inputs: $$inputs"; \
	$(UV_COMPILE) -o $(LOCK).tmp requirements.txt && \
	$(UV_COMPILE) -c $(LOCK).tmp -o $(DEV_LOCK).tmp requirements-dev.txt && \
	{ printf "$$head\n# From requirements.txt: what production installs (pip install --require-hashes -r $(LOCK)).\n"; cat $(LOCK).tmp; } > $(LOCK) && \
	{ printf "$$head\n# From requirements-dev.txt (runtime versions as in $(LOCK)): what make test and CI install.\n"; cat $(DEV_LOCK).tmp; } > $(DEV_LOCK); \
	rc=$$?; rm -f $(LOCK).tmp $(DEV_LOCK).tmp; exit $$rc

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
