# FitAtlas: `make run` (pipeline once, publish), `make test` (`make test-fast`: no integration tests), `make lint`, `make dev` (Dagster UI + daemon), `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MANIFEST := dbt_project/target/manifest.json
export DAGSTER_HOME ?= $(CURDIR)/.dagster
export DBT_SEND_ANONYMOUS_USAGE_STATS := false
export GX_ANALYTICS_ENABLED := false

.PHONY: install dbt-prepare run test test-fast lint dev bench snapshot clean

# The venv is rebuilt only when pyproject.toml changes.
# llm-analysis (the peer `make bench` and tests/test_peer_bench.py compare with) pins a transformers
# the oracle cannot use; it imports transformers only to fetch configs, so it goes in without its deps.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-analysis==0.2.2
	touch $(STAMP)

install: $(STAMP)

# @dbt_assets needs a manifest at import time.
$(MANIFEST): $(STAMP) $(shell find dbt_project -name '*.sql' -o -name '*.yml' -o -name '*.csv' | grep -v target/)
	cd dbt_project && ../$(BIN)/dbt parse --profiles-dir . --quiet
	touch $(MANIFEST)

dbt-prepare: $(MANIFEST)

run: $(MANIFEST)
	$(BIN)/fitatlas run

test: $(MANIFEST)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# Inner loop: everything but the tests marked integration (pipelines, Dagster, dbt, GE suites).
test-fast: $(MANIFEST)
	$(BIN)/python -m pytest -q -n 2 -m "not integration"

# ruff, configured in pyproject.toml ([tool.ruff]); .ci/run runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check .

dev: $(MANIFEST)
	mkdir -p $(DAGSTER_HOME)
	test -f $(DAGSTER_HOME)/dagster.yaml || cp pipelines/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

# Issue 12's figures: `fitatlas bench` at 1k models with llm-analysis timed on 200 of the same cells
# (pipelines/peer_bench.py), at 10k, then the calibration error (benchmarks/README.md). llm-analysis
# goes in with --no-deps: its transformers==4.31 pin would replace ours (pyproject.toml, `bench`
# extra). `fitatlas bench` replaces benchmarks/grid_bench.py here (still runnable by hand).
bench: $(MANIFEST)
	$(BIN)/python -c "import fire, termcolor" 2>/dev/null || $(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python -c "import importlib.metadata as m; assert m.version('llm-analysis') == '0.2.2'" 2>/dev/null \
		|| $(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-analysis==0.2.2
	test -f $${FITATLAS_DATA_DIR:-data}/published.duckdb || $(BIN)/fitatlas run
	$(BIN)/fitatlas bench --models 1000 --peer-sample 200 --json
	$(BIN)/fitatlas bench --models 10000 --json
	$(BIN)/python benchmarks/calibrate.py

snapshot: $(STAMP)
	$(BIN)/python -m tools.snapshot_tool --shared ../shared/data --out pipelines/snapshot

clean:
	rm -rf data .dagster dbt_project/target dbt_project/logs
