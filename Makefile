# Two entry points for a new user: `make demo` and `make test`. Each builds .venv from scratch if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# A CPU-only torch wheel where no NVIDIA GPU is present; the default (CUDA) wheel otherwise.
TORCH_SPEC  ?= torch==2.13.0
TORCH_INDEX := $(if $(shell command -v nvidia-smi 2>/dev/null),,--index-url https://download.pytorch.org/whl/cpu)

.PHONY: setup demo test lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/rtmprune demo --out demo_out

test: setup
	$(VENV)/bin/ruff check src tests bench
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) demo_out work_dirs
