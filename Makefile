# Sluice: `make setup` installs everything and runs the demo; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MPY_DIR := tests/micropython
NODE_STAMP := $(MPY_DIR)/node_modules/.installed
# Debian packages the daemon, the demo and the tests use (installed when missing and we are root).
APT_PACKAGES := python3 python3-venv iproute2 iputils-ping nftables tshark tcpdump procps xl2tpd ppp strongswan-charon strongswan-swanctl libstrongswan-standard-plugins chromium shellcheck dash iperf3 conntrack freeradius freeradius-utils dhcpcd-base
# The QEMU peer lab (make interop) needs these too.
INTEROP_APT := mmdebstrap qemu-system-x86 qemu-utils e2fsprogs openssh-client iperf3
PYTEST_ARGS ?=

.PHONY: setup deps install demo test test-fast interop bench lint clean

setup: install
	$(MAKE) demo

install: deps $(STAMP) $(NODE_STAMP)

deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; \
	  for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	  command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	  if [ -n "$$missing" ]; then \
	    echo "apt-get install:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	else echo "note: not root or no apt-get; make sure these are installed: $(APT_PACKAGES) nodejs npm"; fi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(NODE_STAMP): $(MPY_DIR)/package.json
	cd $(MPY_DIR) && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --silent; else npm install --no-audit --no-fund --silent; fi
	touch $@

demo: $(STAMP)
	$(PY) tests/integration/demo.py

test: install
	$(PY) -m pytest -q -m "not interop" $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not interop and not netns" $(PYTEST_ARGS)

interop: install
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; for p in $(INTEROP_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi; \
	fi
	$(PY) -m tests.interop.matrix

bench: install
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) $(MPY_DIR)/node_modules .pytest_cache .hypothesis
