# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# No model hub is reachable: everything loads from local files.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast lint docs lessons bench browser-deps clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || python3 -m venv $(VENV)
	# The CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,notebooks]'
	touch $(STAMP)

install: $(STAMP)

# --overwrite: a second `make demo` replaces runs/demo (only the files mtl-lib wrote there)
demo: install
	$(VENV)/bin/mtl-lib demo --overwrite

# Debian's chromium for the JupyterLab browser test (root on CI; skipped quietly if apt is unavailable).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "could not install chromium; the browser test will fail"

test: install browser-deps
	$(VENV)/bin/ruff check mtl_lib tests bench
	$(PY) -m pytest -q --durations=15
	$(MAKE) docs

test-fast: install
	$(PY) -m pytest -q -m "not slow and not browser"

lint: install
	$(VENV)/bin/ruff check mtl_lib tests bench

docs: install
	$(VENV)/bin/sphinx-build -W --keep-going -q -b html docs docs/_build/html

# The lessons with real results: train every run of notebooks/lesson_runs.yml once (MiniLM;
# kept in notebooks/cache/), then execute every lesson in full mode into docs/lessons/, which
# `make docs` renders as it is. FAST=1: tiny encoders, a few minutes, pages marked as placeholders.
lessons: install
	$(PY) notebooks/make_lessons.py $(if $(FAST),--fast)

bench: install
	$(PY) bench/run_all.py

clean:
	rm -rf docs/_build runs test-artifacts .pytest_cache
