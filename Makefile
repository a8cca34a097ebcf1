# Every target sets up .venv first, so a fresh clone needs only `make demo` or `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.phplib-installed
CONFIG ?= configs/toy.yaml

.PHONY: setup demo test test-unit test-notebooks lab bench sweeps clean assignments

setup: $(STAMP)

# pip resolves torch==2.14.1 and torchvision==0.29.1 (pinned in pyproject.toml) from the builds
# already on this machine's disk when they are there, and from PyPI otherwise.
$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "phplib needs Python 3.11 or newer"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(PY) -m phplib run --config $(CONFIG)

test: setup
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

test-unit: setup
	$(PY) -m pytest tests

test-notebooks: setup
	$(PY) -m pytest notebooks --nbval-lax --nbval-current-env

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

bench: setup
	$(PY) benchmarks/toy_stream.py

# Student notebooks and autograder zips from notebooks/assignments/instructor (otter-grader).
assignments: setup
	$(PY) tools/make_assignments.py

# Regenerate the cached ablation sweeps that notebooks 08 and 09 read (about 15 minutes on 2 cores).
sweeps: setup
	$(PY) -m phplib ablate orderings --config configs/ablation_toy.yaml --seeds 0 1 2 \
		--task-orders AVE,LLP,AVQA AVQA,LLP,AVE --out notebooks/results/ordering_sweep.csv
	$(PY) -m phplib ablate prompts --config configs/ablation_toy.yaml --seeds 0 1 2 \
		--out notebooks/results/prompt_sweep.csv

clean:
	rm -rf runs .pytest_cache
