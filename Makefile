# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false
export MPLBACKEND := Agg

.PHONY: help venv demo test lint format bench bench-generate bench-models bench-quality bench-latency clean ui ui-stop ui-status

help:
	@echo "make demo            install into .venv and run the pipeline on synthetic demo data"
	@echo "make test            install into .venv and run the test suite"
	@echo "make lint            ruff check"
	@echo "make ui              start a local Prefect server + UI (SQLite, 127.0.0.1:4200) in the background"
	@echo "make ui-stop         stop the server started by make ui (make ui-status: is it up?)"
	@echo "make bench           the whole pipeline on bench-32m (32M ratings): per-stage wall s, peak memory, cached"
	@echo "make bench-generate  time generating the bench-32m synthetic data (prints seconds, peak memory)"
	@echo "make bench-models    candidates + re-rank throughput vs implicit's batch recommend (bench-32m shape)"
	@echo "make bench-quality   the pipeline on ml-latest-small: validation and test figures of the tuned policy and every tuned baseline"
	@echo "make bench-latency   an unchanged re-run and movierec recommend, timed as whole commands (PROFILE=demo; bench-32m after make bench)"

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
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check flows tasks tests scripts

format: $(STAMP)
	$(BIN)/ruff format flows tasks tests scripts

bench-generate: $(STAMP)
	$(BIN)/python scripts/bench_generate.py --profile bench-32m

bench-models: $(STAMP)
	$(BIN)/python scripts/bench_models.py

# The pipeline on real MovieLens (ml-latest-small beside the checkout, or DATA_DIR=...): validation
# and test Recall/MAP/NDCG@10 of the tuned policy and every tuned baseline, the chosen parameters,
# the paired difference to the best baseline and the search's wall time.
DATA_DIR ?= ../shared/data/ml-latest-small
bench-quality: $(STAMP)
	$(BIN)/python scripts/bench_quality.py --data-dir $(DATA_DIR)

# An unchanged re-run and `movierec recommend` (known user, genre filter, new user), timed as whole
# commands, medians of 5: PROFILE=bench-32m after `make bench`.
PROFILE ?= demo
bench-latency: $(STAMP)
	$(BIN)/python scripts/bench_latency.py --profile $(PROFILE)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# The whole pipeline on bench-32m (ML-32M shape); prints per-stage wall time, peak memory, cache hits
# (from the run's own logs/stages.json). Run it twice: the second run is served from cache.
bench: $(STAMP)
	$(BIN)/movierec run --profile bench-32m || test $$? -eq 1

# A local Prefect server with its UI (SQLite under .prefect/, log and pid file there), in the
# background; bound to 127.0.0.1 unless you ask otherwise (make ui UI_HOST=0.0.0.0 exposes it).
UI_HOST ?= 127.0.0.1
UI_PORT ?= 4200
UI_HOME := $(CURDIR)/.prefect
UI_URL   = http://$(UI_HOST):$(UI_PORT)

ui: $(STAMP)
	@mkdir -p $(UI_HOME)
	@if [ -f $(UI_HOME)/server.pid ] && kill -0 $$(cat $(UI_HOME)/server.pid) 2>/dev/null; then \
	  echo "Prefect server already running (pid $$(cat $(UI_HOME)/server.pid))"; \
	else \
	  PREFECT_HOME=$(UI_HOME) PREFECT_UI_API_URL=$(UI_URL)/api nohup $(BIN)/prefect server start \
	    --host $(UI_HOST) --port $(UI_PORT) > $(UI_HOME)/server.log 2>&1 & echo $$! > $(UI_HOME)/server.pid; \
	  echo $(UI_URL) > $(UI_HOME)/server.url; \
	fi
	@for i in $$(seq 90); do \
	  $(BIN)/python -c "import urllib.request as u; u.urlopen('$(UI_URL)/api/health', timeout=2)" \
	    2>/dev/null && break; \
	  if ! kill -0 $$(cat $(UI_HOME)/server.pid) 2>/dev/null || [ $$i -eq 90 ]; then \
	    tail -20 $(UI_HOME)/server.log; \
	    echo "the Prefect server did not answer $(UI_URL)/api/health; log: $(UI_HOME)/server.log"; \
	    exit 1; \
	  fi; \
	  sleep 1; \
	done
	@echo "Prefect UI:  $(UI_URL)   (log $(UI_HOME)/server.log, stop with make ui-stop)"
	@echo "movierec run / history / handoff record to it while it runs (no PREFECT_API_URL needed)"
	@echo "deployments: export PREFECT_API_URL=$(UI_URL)/api && $(BIN)/movierec serve"

ui-stop:
	@if [ -f $(UI_HOME)/server.pid ] && kill $$(cat $(UI_HOME)/server.pid) 2>/dev/null; then \
	  echo "stopped the Prefect server (pid $$(cat $(UI_HOME)/server.pid))"; \
	else echo "no Prefect server started by make ui is running"; fi
	@rm -f $(UI_HOME)/server.pid

ui-status:
	@if [ -f $(UI_HOME)/server.pid ] && kill -0 $$(cat $(UI_HOME)/server.pid) 2>/dev/null; then \
	  echo "Prefect server running (pid $$(cat $(UI_HOME)/server.pid)) at $$(cat $(UI_HOME)/server.url 2>/dev/null)"; \
	else echo "no Prefect server started by make ui is running (runs use a temporary one on $(UI_HOME))"; fi
