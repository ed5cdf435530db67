# Entry points for a fresh machine (see README); `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 8
# The locked torch release (requirements/lock.txt), CPU build; for a GPU install its CUDA build first (README, "GPU").
TORCH ?= torch==2.13.0
# PyPI's torch is the CUDA build (GBs of nvidia-* wheels); PyTorch's CPU index serves `2.13.0+cpu`,
# which pip ranks above it. torch alone comes from there (--no-deps; the next install brings its
# dependencies from the usual index), and `lock.py cpu-torch` checks the build after the install.
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PIP_TORCH = $(1)/python -m pip install --quiet --no-deps --extra-index-url $(TORCH_INDEX) "$(TORCH)"
# the venv's commands first, also for Snakemake's jobs
RUN := PATH="$(abspath $(BIN)):$$PATH"

LOCK := requirements/lock.txt
# pip with the lock: every package, transitive ones included, at the version CI tested
PIP_LOCKED = $(1)/python -m pip install --quiet -c $(LOCK)

.PHONY: help install lock check-lock test-latest demo report test test-fast lint format clean distclean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv from the lock (CPU PyTorch) with the project and its test tools

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(call PIP_LOCKED,$(BIN)) pip setuptools
	rm -f $(VENV)/.own-torch
	$(BIN)/python -c "import torch" 2>/dev/null && touch $(VENV)/.own-torch || $(call PIP_TORCH,$(BIN))
	$(call PIP_LOCKED,$(BIN)) --no-build-isolation -e ".[test]"
	[ -e $(VENV)/.own-torch ] || $(BIN)/python requirements/lock.py cpu-torch
	$(BIN)/python requirements/lock.py check
	touch $@

check-lock: install  ## the installed versions equal requirements/lock.txt
	$(BIN)/python requirements/lock.py check

lock:  ## regenerate requirements/lock.txt (and the conda files' pins) from a clean resolve of pyproject.toml
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip setuptools
	$(call PIP_TORCH,.venv-lock/bin)
	.venv-lock/bin/python -m pip install --quiet --no-build-isolation -e ".[test]"
	.venv-lock/bin/python requirements/lock.py cpu-torch
	.venv-lock/bin/python requirements/lock.py freeze > $(LOCK).new
	mv $(LOCK).new $(LOCK)
	.venv-lock/bin/python requirements/lock.py envs
	rm -rf .venv-lock
	@echo "wrote $(LOCK): run make distclean test, then commit it"

# torch is held at the locked CPU build there: an eager upgrade would pull the CUDA wheels (GBs)
test-latest:  ## the test suite against today's newest releases, without the lock (in .venv-latest)
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet --upgrade pip setuptools
	$(call PIP_TORCH,.venv-latest/bin)
	echo "$(TORCH)" > .venv-latest/torch-pin.txt
	.venv-latest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager \
		-c .venv-latest/torch-pin.txt -e ".[test]"
	.venv-latest/bin/python requirements/lock.py cpu-torch
	.venv-latest/bin/python requirements/lock.py check || true
	PATH="$(abspath .venv-latest/bin):$$PATH" .venv-latest/bin/python -m pytest -q

demo: install  ## the whole pipeline on the embedded synthetic dataset (config/config.yaml) -> results/
	$(RUN) $(BIN)/snakemake --cores $(CORES) all

report: install  ## results/report.html: the tables and plots of the last run as one page
	$(RUN) $(BIN)/snakemake --cores 1 --report results/report.html

test: install  ## the whole test suite (the workflow end to end included)
	$(BIN)/python requirements/lock.py check
	$(RUN) $(BIN)/python -m pytest -q

test-fast: install  ## the test suite without the end-to-end workflow runs (marker `slow`)
	$(RUN) $(BIN)/python -m pytest -q -m "not slow"

lint: install  ## ruff (lint, format check), snakefmt and snakemake --lint, as CI runs them
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check workflow/
	$(RUN) $(BIN)/snakemake --lint

format: install  ## ruff format, ruff's safe fixes and snakefmt, in place
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
	$(BIN)/snakefmt workflow/

clean:  ## delete what the pipeline made: results/ (MLflow database and its artifacts together), .snakemake/
	rm -rf results/*/ results/mlflow.db results/.mlflow_ready results/report.html .snakemake/ .test/results/ .test/.snakemake/

distclean: clean  ## also the downloaded raw data (resources/) and the environment (.venv)
	rm -rf resources/ .test/resources/ $(VENV) .venv-latest .venv-lock
