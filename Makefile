# One Makefile for people and CI. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Spark reads the top-level spark-defaults.conf through SPARK_CONF_DIR.
export SPARK_CONF_DIR := $(CURDIR)
export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(CURDIR)/$(VENV)/bin/python
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(VENV)/bin/python

SAMPLE_TAPE := ingest/tapes/sample.ndjson.gz
DEMO_QUERY  := SELECT exchange, symbol, date, count(*) AS bars, sum(trade_count) AS trades, \
               min(window_start) AS first_bar, max(window_start) AS last_bar FROM ohlc GROUP BY ALL ORDER BY ALL

# make live: the sources. Default: the demo market. EXCHANGE=binance SYMBOLS=BTCUSDT,ETHUSDT for one venue,
# SOURCES="binance:BTCUSDT,ETHUSDT coinbase:BTC-USD,ETH-USD" for several (or synth:RATE for load).
# MLFLOW=1 also serves MLflow's UI (make mlflow).
LIVE_ARGS := $(foreach s,$(SOURCES),--source $(s)) $(if $(EXCHANGE),--source $(EXCHANGE):$(SYMBOLS)) $(if $(MLFLOW),--mlflow)

# Resolution output (Maven's, Ivy's) goes to a log; a failure shows its end.
DEPS_LOG := .logs/deps.log
define logged
	@mkdir -p .logs; echo "$(1) (log: $(DEPS_LOG))"; \
	  $(2) >> $(DEPS_LOG) 2>&1 || { tail -n 25 $(DEPS_LOG); echo "failed: see $(CURDIR)/$(DEPS_LOG)"; exit 1; }
endef

.PHONY: help venv deps kafka-jars spark-jars kafka-up kafka-down run live dashboard api mlflow test chromium bench check fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

venv: $(STAMP) ## create .venv with the pinned dependencies

$(STAMP): pyproject.toml requirements.lock
	$(call logged,Python environment in $(VENV),python3 -m venv $(VENV) && $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q -c requirements.lock -e '.[dev]')
	@# Spark also finds its defaults in $$SPARK_HOME/conf: link ours there, so a bare
	@# `spark-submit jobs/stream_ohlc.py` from this venv uses them without SPARK_CONF_DIR.
	@spark_home=$$($(PY) -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))'); \
	  mkdir -p $$spark_home/conf && ln -sf $(CURDIR)/spark-defaults.conf $$spark_home/conf/spark-defaults.conf
	@touch $@

kafka-jars: venv ## resolve the Kafka broker's jars from Maven Central
	$(call logged,Kafka broker jars,$(PY) -m infra.kafka_local jars)

spark-jars: $(VENV)/.spark-jars ## resolve Spark's Kafka connector (spark.jars.packages) and Delta's into the Ivy cache

# A stamp, so `make live` and `make test` do not start a Spark session each time to check.
$(VENV)/.spark-jars: $(STAMP) spark-defaults.conf tests/engines/spark_read.py
	$(call logged,Spark's Kafka connector,$(PY) -c 'from jobs.session import spark_session; spark_session("resolve-connector").stop()')
	$(call logged,Delta's Spark connector (the cross-engine test reads the lake with it),$(PY) tests/engines/spark_read.py --resolve)
	@touch $@

deps: venv kafka-jars spark-jars ## everything the run and the tests need

kafka-up: kafka-jars ## start the local Kafka broker (KRaft) and create the topics; idempotent
	$(PY) -m infra.kafka_local up

kafka-down: venv ## stop the broker that kafka-up started
	$(PY) -m infra.kafka_local down

run: deps ## demo: the broker, the sample tape replayed, the stream job until done, a query of the lake (infra/run.py)
	@$(PY) -m infra.run

live: deps ## the whole live system, supervised: broker, ingestor (demo market by default), stream job, live bars, lake maintenance, dashboard, HTTP API
	$(PY) -m infra.live $(LIVE_ARGS)

dashboard: venv ## the Streamlit dashboard over the lake (http://127.0.0.1:8501)
	$(VENV)/bin/streamlit run dashboard/app.py --server.address 127.0.0.1 --server.headless true

api: venv ## the read-only HTTP API over the lake and the live bars (http://127.0.0.1:8000/docs)
	$(PY) -m api

mlflow: venv ## MLflow's tracking UI over the local store models/mlflow/ (http://127.0.0.1:5000; builds .venv-mlflow once)
	$(PY) -m infra.mlflow_ui

test: deps chromium ## run the test suite (unit + integration with real Kafka, Spark and a browser)
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=20

chromium: ## Debian's chromium for the dashboard's browser tests (Playwright downloads nothing)
	@command -v chromium >/dev/null || { S=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$S apt-get install -y -q chromium >/dev/null || { $$S apt-get update -q >/dev/null && $$S apt-get install -y -q chromium >/dev/null; }; }
	@chromium --version

bench: deps ## run the benchmarks (numbers go in bench/RESULTS.md)
	$(PY) -m pytest -m campaign -q  # the checkpoint refusals with the real job (tests/test_faults_disk.py)
	$(PY) bench/ingest_throughput.py
	$(PY) bench/decode.py
	$(PY) bench/mlflow_tracking.py
	$(PY) bench/e2e.py
	$(PY) bench/peer_quix.py --trades 2000000
	$(PY) bench/tick_storage.py
	$(PY) bench/watermark.py --late-every 5 --plot bench/watermark.png
	$(PY) bench/lake_query.py
	$(PY) bench/lake_query.py --in-day
	$(PY) bench/delta_log.py --plot bench/delta_log.png
	$(PY) bench/live.py --plot bench/live.png
	$(PY) bench/faults.py
	$(PY) bench/api.py --plot bench/api.png

check: venv ## format check, lint and type check
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

fmt: venv ## format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean: ## remove the lake's data, checkpoints and the local broker (keeps .venv)
	-$(PY) -m infra.kafka_local down
	rm -rf data/lake data/checkpoints .kafka/data .kafka/server.properties .kafka/broker.log .live
