# Everything a fresh machine needs, from nothing: `make run` and `make test` set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# torch is pinned here only: this machine holds a CPU wheel of 2.13.0 on disk. A plain `pip install
# torch` with no torch present would pull a multi-GB CUDA build. pyproject declares torch>=2.4.
TORCH  := torch==2.13.0

.PHONY: setup run test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

run: setup
	$(VENV)/bin/tokvec embed

test: setup
	$(PY) -m pytest

bench: setup
	$(PY) benchmarks/bench_input_embedding.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
