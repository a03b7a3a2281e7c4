# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export MPLBACKEND := Agg

.PHONY: help venv demo test lint format bench bench-generate bench-models clean

help:
	@echo "make demo            install into .venv and run the pipeline on synthetic demo data"
	@echo "make test            install into .venv and run the test suite"
	@echo "make lint            ruff check"
	@echo "make bench           the whole pipeline on bench-32m (32M ratings): per-stage wall s, peak memory, cached"
	@echo "make bench-generate  time generating the bench-32m synthetic data (prints seconds, peak memory)"
	@echo "make bench-models    candidates + re-rank throughput vs implicit's batch recommend (bench-32m shape)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,dask]'
	touch $(STAMP)

venv: $(STAMP)

# exit 1 = the run completed but an acceptance gate failed (reported, not hidden): not a make error
demo: $(STAMP)
	$(BIN)/movierec run --profile demo || test $$? -eq 1

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check flows tasks tests scripts

format: $(STAMP)
	$(BIN)/ruff format flows tasks tests scripts

bench-generate: $(STAMP)
	$(BIN)/python scripts/bench_generate.py --profile bench-32m

bench-models: $(STAMP)
	$(BIN)/python scripts/bench_models.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The whole pipeline on bench-32m (ML-32M shape); prints per-stage wall time, peak memory, cache hits
# (from the run's own logs/stages.json). Run it twice: the second run is served from cache.
bench: $(STAMP)
	$(BIN)/movierec run --profile bench-32m || test $$? -eq 1
