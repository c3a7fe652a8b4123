# cerebro-ops — `make demo` runs the demo study through Airflow; `make test` runs the test suite.
SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
export PYTHONPATH := $(ROOT)
export SPARK_LOCAL_IP := 127.0.0.1
export PYSPARK_PYTHON := $(PY)
export PYSPARK_DRIVER_PYTHON := $(PY)
export AIRFLOW_HOME := $(ROOT)/.cerebro/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(ROOT)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(ROOT)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
# as in scripts/airflow_local.py: `make demo`'s `airflow dags test` creates cerebro_demo, and a DAG created
# paused stays paused, so a run triggered later from `make airflow-ui` would wait queued
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION := False
export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT := 120
export AIRFLOW_CONN_SPARK_DEFAULT ?= {"conn_type":"spark","host":"local[2]"}
export TF_CPP_MIN_LOG_LEVEL := 2
export MLFLOW_TRACKING_URI := sqlite:///$(ROOT)/.cerebro/mlflow.db

.PHONY: install test test-fast demo demo-cli mlflow-ui airflow-ui airflow-down airflow-init spark-connect bench bench-smoke bench-report clean

STAMP := $(VENV)/.installed

$(STAMP): requirements.txt pyproject.toml
	@command -v java >/dev/null || { echo "Java 17 is required (apt-get install openjdk-17-jre-headless)"; exit 1; }
	@command -v uv >/dev/null || python3 -m pip install -q uv
	@test -x $(PY) || uv venv -q -p python3.11 $(VENV) || uv venv -q $(VENV)
	VIRTUAL_ENV=$(VENV) uv pip install -q --compile-bytecode -r requirements.txt
	VIRTUAL_ENV=$(VENV) uv pip install -q --no-deps -e .
	@# Spark's classes, loaded and verified once: a local Spark starts 1-3 s sooner (cerebro_ops/spark/class_archive.py)
	$(PY) -m cerebro_ops.cli jvm-archive || echo "no JVM class archive: Spark starts without it"
	@touch $(STAMP)

install: $(STAMP)

# The files run in TEST_WORKERS processes (pytest-xdist); tests/conftest.py groups those sharing a fixture.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS)

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not spark and not airflow"

airflow-init: $(STAMP)
	@mkdir -p $(AIRFLOW_HOME)
	$(VENV)/bin/airflow db migrate > $(AIRFLOW_HOME)/migrate.log 2>&1 || { cat $(AIRFLOW_HOME)/migrate.log; exit 1; }

demo: $(STAMP) airflow-init
	$(PY) -m cerebro_ops.cli make-data dummy --out .cerebro/data
	$(PY) -m cerebro_ops.cli validate dags/specs/demo.yaml
	@echo "== running DAG cerebro_demo through Airflow (airflow dags test) =="
	@time $(VENV)/bin/airflow dags test cerebro_demo > .cerebro/demo-airflow.log 2>&1 || { tail -60 .cerebro/demo-airflow.log; exit 1; }
	@grep -E "hop epoch=" .cerebro/demo-airflow.log | head -4 | grep -oE "hop epoch=.*loss=[0-9.]+" || true
	@echo "... $$(grep -c 'hop epoch=' .cerebro/demo-airflow.log) hops in all, one log line each (.cerebro/demo-airflow.log)"
	@grep -oE "(registered|challenger) [^[]*" .cerebro/demo-airflow.log | tail -1 || true
	$(PY) -m cerebro_ops.cli leaderboard dags/specs/demo.yaml
	@echo
	@echo "MLflow UI:  make mlflow-ui   (http://127.0.0.1:5000)"
	@echo "Airflow UI: make airflow-ui  (http://127.0.0.1:8080; trigger cerebro_demo with the form)"

demo-cli: $(STAMP)
	$(PY) -m cerebro_ops.cli make-data dummy --out .cerebro/data
	$(PY) -m cerebro_ops.cli run dags/specs/demo.yaml

mlflow-ui: $(STAMP)
	$(VENV)/bin/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) --host 127.0.0.1 --port 5000

# The local Airflow, ready to use (scripts/airflow_local.py): login admin, password in
# .cerebro/airflow/passwords.json (random, printed on the first start); Spark Connect with a token; DAGs unpaused; api-server on 127.0.0.1:8080; LocalExecutor
# with one slot per CPU; a Spark Connect server whose warm session every epoch task joins. Ctrl-C or
# `make airflow-down` stops every process it started. AIRFLOW_UI_ARGS="--no-spark": a Spark application per task.
airflow-ui: $(STAMP)
	@test -f .cerebro/data/dummy.parquet || $(PY) -m cerebro_ops.cli make-data dummy --out .cerebro/data
	$(PY) scripts/airflow_local.py up $(AIRFLOW_UI_ARGS)

airflow-down:
	$(PY) scripts/airflow_local.py down

# A Spark Connect server: with AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type":"spark_connect","host":"sc://127.0.0.1","port":15002}'
# every epoch task joins one warm session (≈ 2 s per task instead of ≈ 15 s for a new application).
spark-connect: $(STAMP)
	$(VENV)/bin/spark-submit --class org.apache.spark.sql.connect.service.SparkConnectServer \
	  --master "local[2,4]" --conf spark.connect.grpc.binding.port=15002 \
	  --conf spark.connect.grpc.binding.address=127.0.0.1 --conf spark.sql.shuffle.partitions=2 \
	  --conf spark.connect.session.manager.defaultSessionTimeout=-1 \
	  --conf spark.python.sql.dataFrameDebugging.enabled=false \
	  --conf spark.python.daemon.module=cerebro_ops.spark.warm_daemon spark-internal

# Every benchmark step one after another on an idle machine (smoke, flights_full, cnn_images, prepare_speed,
# streaming, hetero, simulate, hop_server_load, cerebro_dl, airflow_real, ui_load; about 15 minutes on 2 CPUs),
# then benchmarks/RESULTS.md with its Targets table; a failed step is reported there and the others still run.
# Logs: .cerebro/bench-logs/.
bench: $(STAMP)
	$(PY) -m benchmarks.run --full

# CI (.ci/run): the smoke workload and a W=8 simulation, asserting loose ratios (about 1 minute on 2 CPUs).
bench-smoke: $(STAMP)
	$(PY) -m benchmarks.run --smoke

# RESULTS.md again from benchmarks/results/*.json, without running anything.
bench-report:
	$(PY) -m benchmarks.report

# The multi-host stack of docker/ (Postgres, Spark master + 2 workers, MLflow server, Airflow components).
.PHONY: stack-up stack-down
# Secrets: docker/.env, made with random values on the first stack-up (scripts/stack_secrets.py, mode 0600).
stack-up:
	python3 scripts/stack_secrets.py docker/.env
	docker compose -f docker/docker-compose.yml --env-file docker/.env up -d --build

stack-down:
	docker compose -f docker/docker-compose.yml --env-file docker/.env down

clean:
	rm -rf .cerebro
