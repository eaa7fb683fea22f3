# Every target sets up its own .venv first, so a fresh machine needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test docs bench bench-http bench-spark bench-planner clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,spark,docs]"
	touch $(STAMP)

demo: install
	$(BIN)/python -m training demo

test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The documentation site into site/ (open site/index.html; it needs no network). --strict: a broken link fails.
# NO_MKDOCS_2_WARNING: Material's end-of-life notice (recorded in docs/contributing.md) on every build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench: install
	$(BIN)/python benchmarks/bench.py

# Single-lead HTTP latency of serve.py http vs mlflow models serve, on 127.0.0.1, bounded in requests and time.
bench-http: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python benchmarks/bench_http.py

# The planner page in Chromium: first paint and a control change with a 1,000,000-lead base vs 1,000 leads.
bench-planner: install
	$(BIN)/python benchmarks/bench_planner.py

# One lead base scored by serve.py score (pandas) and serve.py spark-score on local[1], local[2] and a standalone cluster of two 1-core workers started here, in the same run.
bench-spark: install
	$(BIN)/python benchmarks/bench_spark.py

clean:
	rm -rf data mlflow.db mlruns reports bench_data site
