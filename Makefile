# Two entry points for a fresh machine (see README):
#   make demo   install into .venv, then run the whole pipeline on the embedded synthetic dataset
#   make test   install into .venv, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 8
# CPU build of PyTorch; for a GPU install the CUDA build first (README, "GPU").
TORCH ?= torch==2.13.0

.PHONY: install demo test report clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

demo: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) all

report: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores 1 --report results/report.html

test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q

clean:
	rm -rf results/*/ resources/ .snakemake/
