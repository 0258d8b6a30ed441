# The two commands in the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test venv deps

$(BIN)/svcprobe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/svcprobe

# Self-contained sandbox on loopback: DNS server, TCP backends, the agent.
demo: venv
	$(BIN)/svcprobe demo

# Installs every test prerequisite (Debian packages, Go-built binaries; cached) and runs all tiers.
test: venv
	scripts/install-test-deps
	$(BIN)/python -m pytest
