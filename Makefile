# Everything a fresh machine needs, from nothing: `make run` and `make test` set up .venv first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
# torch is pinned here only: this machine holds a CPU wheel of 2.13.0 on disk. A plain `pip install
# torch` with no torch present would pull a multi-GB CUDA build. pyproject declares torch>=2.4.
TORCH  := torch==2.13.0

.PHONY: setup system-deps run lint test test-fast bench clean

setup: $(STAMP)

# setup.py builds the C BPE trainer (src/tokvec/tokenizers/_native/) in place; a change to its sources rebuilds it
$(STAMP): pyproject.toml setup.py Makefile $(wildcard src/tokvec/tokenizers/_native/*.[ch])
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

# The main job: train the tiny preset on the default corpus (the Python standard library's source)
# for a short budget, then print a sample. A few minutes on 2 cores; runs/make-run is replaced each time.
# One torch thread: on a shared machine a second thread spin-waits on the other users (10x slower here).
# bpe:1024, not char: measured on this corpus at 500 steps (about the same wall time either way), the char
# model's sample is 80% spaces (it learns indentation first) while the BPE model's reads as Python.
RUN_DIR   ?= runs/make-run
RUN_STEPS ?= 500
run: setup
	$(VENV)/bin/tokvec train --preset tiny --tokenizer bpe:1024 --max-steps $(RUN_STEPS) --eval-interval 100 \
		--threads 1 --out $(RUN_DIR) --force --sample 250

# Debian packages some tests use: a CJK font (Chinese plot labels) and Chromium (the HTML report is
# rendered headless). Installed only when missing, as root, where apt-get exists; otherwise skipped
# quietly (those tests then say why they skip or fall back). Measured on the dev machine: apt-get
# update 2 s, fonts-noto-cjk 7 s, chromium 35 s.
system-deps:
	@missing=""; \
	if command -v fc-list >/dev/null 2>&1; then fc-list :lang=zh | grep -q . || missing="fonts-noto-cjk"; \
	else missing="fonts-noto-cjk"; fi; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $$missing with apt-get (for the plot and report tests)"; \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; } >/dev/null 2>&1 \
	    || echo "apt-get could not install $$missing; the tests that need it will skip"; \
	fi

# The layering rule (docs/architecture.md) and the lint rules, both configured in pyproject.toml.
lint: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff format --check src tests benchmarks examples
	$(VENV)/bin/ruff check src tests benchmarks examples

test: setup system-deps lint
	$(PY) -m pytest

# Everything but the tests marked slow (subprocesses, torchrun, the browser, real training), on every core
# (pytest-xdist): under a minute on 2 cores.
test-fast: setup lint
	$(PY) -m pytest -m "not slow" -n auto

# Every benchmark, each a side-by-side ratio against a peer measured in the same run. The peers
# (HF transformers, sentencepiece) come from the `bench` extra. Long: tens of minutes on 2 cores.
bench: setup
	$(PIP) install --quiet -e '.[test,bench]'
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
