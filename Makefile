# Two commands do all of the set-up on a fresh clone:
#   make demo   creates .venv, installs the pinned Copilot CLI if missing, runs examples/demo-plan.json offline
#   make test   the whole test suite (unit + integration on the real Copilot CLI)
#   make chaos  signal rounds on a real run (bench/chaos), then check nothing was lost or repeated
#   make interop  only the interop tests with GitHub's official JS clients (npm-installed into .interop/)
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
COPILOT_VERSION := 1.0.102
TOOLS := .tools
LOCAL_COPILOT := $(TOOLS)/node_modules/.bin/copilot
# Use a copilot already on PATH or in COPILOT_CLI_PATH; otherwise the one this Makefile installs.
export COPILOT_CLI_PATH ?= $(shell command -v copilot 2>/dev/null || echo $(CURDIR)/$(LOCAL_COPILOT))
DEMO := demo

.PHONY: setup demo test interop lint bench chaos clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(COPILOT_CLI_PATH):
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error @github/copilot@$(COPILOT_VERSION)

setup: $(VENV)/.installed $(COPILOT_CLI_PATH)

# Each task works in its own git worktree (the default isolation), so the scratch repository needs a first
# commit; the agents' work lands on branch planeteer/demo-plan, which the demo then merges, as a person would.
demo: setup
	rm -rf $(DEMO) && mkdir -p $(DEMO)/.planeteer
	git -C $(DEMO) init --quiet --initial-branch=main
	git -C $(DEMO) remote add origin https://github.com/octo-org/planeteer-demo.git
	echo "# Planeteer demo" > $(DEMO)/README.md
	git -C $(DEMO) add README.md
	git -C $(DEMO) -c user.name=Demo -c user.email=demo@localhost -c commit.gpgsign=false commit --quiet -m "Start the demo"
	cp examples/demo-plan.json $(DEMO)/.planeteer/demo-plan.json
	$(VENV)/bin/planeteer run --offline --workdir $(DEMO) --copilot-home $(DEMO)/.copilot \
		$(DEMO)/.planeteer/demo-plan.json
	$(VENV)/bin/planeteer status $(DEMO)/.planeteer/demo-plan.json
	git -C $(DEMO) merge --quiet planeteer/demo-plan
	@echo "The agents' work, merged from planeteer/demo-plan: $$(ls $(DEMO)/planeteer-notes | tr '\n' ' ')"

# Two at a time (pytest-xdist, a test file per worker), then alone the tests that hold planeteer to deadlines
# (marked `timing`), so that no deadline is measured on a machine the suite itself loads. Both parts always run; the target fails if either did. Plain `pytest` runs everything, one at a time.
test: setup
	$(PY) -m pytest -n 2 --dist loadfile -m "not timing"; parallel=$$?; \
	$(PY) -m pytest -p no:xdist -m timing && exit $$parallel

# tests/test_interop.py installs @actions/artifact and @actions/cache into .interop/ on first use.
interop: setup
	$(PY) -m pytest -q tests/test_interop.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy planeteer_action tests bench

bench: setup
	$(PY) -m bench

# Kill/interrupt/terminate rounds on a real run, then check its promises (bench/README.md). ARGS="--seed 7".
chaos: setup
	$(PY) -m bench.chaos $(ARGS)

clean:
	rm -rf $(VENV) $(TOOLS) $(DEMO) .interop .pytest_cache .mypy_cache .ruff_cache *.egg-info
