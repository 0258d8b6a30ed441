# The two commands in the README: `make demo` and `make test` (`make check` is the fast part of it).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test check venv

$(BIN)/svcprobe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,check]'
	touch $@

venv: $(BIN)/svcprobe

# Self-contained sandbox on loopback: DNS server, TCP backends, the agent.
demo: venv
	$(BIN)/svcprobe demo

# Static checks: lint and import order, types, the layer contracts of the data flow.
# Needs no root and nothing but the venv.
check: venv
	$(BIN)/ruff check agent tests bench plugin/kubectl-svcprobe
	$(BIN)/mypy
	$(BIN)/mypy --strict --scripts-are-modules plugin/kubectl-svcprobe
	$(BIN)/lint-imports

# Static checks first, then every test prerequisite (Debian packages, Go-built binaries;
# cached) and all tiers.
test: check
	scripts/install-test-deps
	$(BIN)/python -m pytest
