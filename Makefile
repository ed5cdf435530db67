# Entry points for a fresh machine (see README); `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 8
# CPU build of PyTorch; for a GPU install the CUDA build first (README, "GPU").
TORCH ?= torch==2.13.0
# the venv's commands first, also for Snakemake's jobs
RUN := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: help install demo report test test-fast lint format clean distclean

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv (CPU PyTorch, pinned) and install the project with its test tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: install  ## the whole pipeline on the embedded synthetic dataset (config/config.yaml) -> results/
	$(RUN) $(BIN)/snakemake --cores $(CORES) all

report: install  ## results/report.html: the tables and plots of the last run as one page
	$(RUN) $(BIN)/snakemake --cores 1 --report results/report.html

test: install  ## the whole test suite (the workflow end to end included)
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
	rm -rf resources/ .test/resources/ $(VENV)
