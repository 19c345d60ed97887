# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test`.
# Each installs what it needs: system OSMesa (headless rendering), a venv, torch 2.13.0 first
# (CPU wheel) and then wmpo with torch kept as a constraint.

VENV        ?= .venv
PYTHON      ?= python3
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip
STAMP       := $(VENV)/.wmpo-installed
PYTEST_ARGS ?=

export MUJOCO_GL ?= osmesa
export PYOPENGL_PLATFORM ?= osmesa

.PHONY: setup system-deps demo test test-fast lint bench clean

setup: system-deps $(STAMP)

# libOSMesa is the only system library robosuite needs for headless CPU rendering.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q libOSMesa; then \
		echo "installing libosmesa6 (headless OpenGL)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get install -y -q libosmesa6 >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q libosmesa6 >/dev/null; }; \
	fi

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e ".[dev]"
	@touch $@

demo: setup
	$(VENV)/bin/wmpo demo

test: setup
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

# Unit and CLI tests only (no simulation).
test-fast: setup
	$(VENV)/bin/pytest -q -m "not sim and not slow" $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

bench: setup
	$(PY) benchmarks/collect.py --out benchmarks/results/collect.json
	$(PY) benchmarks/eval.py --out benchmarks/results/eval.json

clean:
	rm -rf $(VENV) runs/demo .pytest_cache .ruff_cache
