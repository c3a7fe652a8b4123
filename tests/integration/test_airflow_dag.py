"""The demo study run through Airflow for real: `airflow db migrate` + `airflow dags test` in a subprocess,
with a throw-away AIRFLOW_HOME and a DAGs folder holding a copy of dags/cerebro_dags.py and ONE small TPE spec
(2 configs in 2 batches of 1, 2 epochs, 2 workers, tmp store + sqlite tracking): both batches train, through
the batch_1 / batch_2 TaskGroups and the next_batch task between them. Then the outcome is read from the store
and MLflow. A trigger with an unknown Param fails in prepare before anything is written.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import PY, REPO, small_spec, write_yaml

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.airflow]

NAME = "itest_af"
CONFIGS, WORKERS, EPOCHS = 2, 2, 2


def _env(home: Path, dags: Path) -> dict:
    venv_bin = str(Path(PY).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
        "PYTHONPATH": str(REPO),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": PY,
        "PYSPARK_DRIVER_PYTHON": PY,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
    })
    return env


def _airflow(env: dict, *args: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(PY).parent / "airflow"), *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def test_demo_study_through_airflow(tmp_path):
    from mlflow import MlflowClient

    from cerebro_ops.example_data import make_example_data
    from cerebro_ops.core.spec import load_spec
    from cerebro_ops.store import Store
    from tests.study_files import mlflow_runs

    home, dags = tmp_path / "airflow", tmp_path / "dags"
    (dags / "specs").mkdir(parents=True)
    home.mkdir()
    # cerebro_dags.py reads the specs from Path(__file__).parent / "specs": copy it next to a specs/ folder.
    shutil.copy(REPO / "dags" / "cerebro_dags.py", dags / "cerebro_dags.py")
    data = make_example_data("dummy", tmp_path / "data")
    raw = small_spec(NAME, data, tmp_path / "store", tmp_path / "mlflow.db", epochs=EPOCHS, num_configs=CONFIGS)
    raw["search"].update(method="tpe", batch_size=1)  # 2 batches of 1 config: next_batch runs once
    spec_path = write_yaml(dags / "specs" / f"{NAME}.yaml", raw)
    spec = load_spec(spec_path)
    env = _env(home, dags)
    runs = Store(spec.runtime.store).sub(spec.name, "runs")

    migrate = _airflow(env, "db", "migrate", timeout=600)
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    # An unknown Param: prepare fails with the error as its last line, before Spark, MLflow or the store.
    bad = _airflow(env, "dags", "test", spec.dag_id, "-c", json.dumps({"learning_rate": 5}), timeout=600)
    bad_log = bad.stdout + bad.stderr
    assert bad.returncode != 0, bad_log[-3000:]
    message = "trigger param 'learning_rate': is not a known param. Fix: use one of seed, epochs, num_configs, source"
    prepare_lines = bad_log[:bad_log.index("end task task_id=prepare")].rstrip().splitlines()
    last_error = next(line for line in reversed(prepare_lines) if "AirflowFailException" in line)
    assert last_error.endswith("AirflowFailException: " + message), last_error
    assert "Spark master" not in bad_log and "partition result" not in bad_log
    assert runs.listdir() == [] and not (tmp_path / "mlflow.db").exists()

    t0 = time.time()
    proc = _airflow(env, "dags", "test", spec.dag_id, "-c", json.dumps({"epochs": EPOCHS}), timeout=1500)
    wall = time.time() - t0
    log = proc.stdout + proc.stderr
    (tmp_path / "airflow-dags-test.log").write_text(log)
    assert proc.returncode == 0, f"airflow dags test failed after {wall:.0f}s:\n{log[-6000:]}"

    run_dirs = runs.listdir()
    assert len(run_dirs) == 1, run_dirs
    state = runs.sub(run_dirs[0]).read_json("state.json")
    assert state["tpe"]["batches"] == [["m000"], ["m001"]], state.get("tpe")
    assert state["epochs_done"] == EPOCHS
    assert state["registered"]["promoted"] is True, state["registered"]
    assert all(s == "FINISHED" for s in state["status"].values()), state["status"]
    assert all(len(state["history"][m]) == EPOCHS for m in ("m000", "m001")), state["history"]

    parent, children = mlflow_runs(spec.runtime.tracking_uri, state)
    assert parent is not None
    assert parent.data.tags.get("airflow.dag_id") == spec.dag_id
    assert parent.data.tags.get("airflow.run_id") == state["run_id"]
    assert len(children) == CONFIGS
    assert MlflowClient(tracking_uri=spec.runtime.tracking_uri).get_model_version_by_alias(spec.name, "champion")

    hops = re.findall(r"hop epoch=\d+ model=\S+ partition=\d+", log)
    assert len(hops) == CONFIGS * WORKERS * EPOCHS, f"{len(hops)} hop lines in the Airflow log:\n" + "\n".join(hops)
    assert len(set(hops)) == len(hops), "a hop was logged twice"
    evals = re.findall(r"eval epoch=\d+ model=\S+ partition=\d+", log)  # W - 1 validation links per config
    assert len(evals) == len(set(evals)) == CONFIGS * (WORKERS - 1) * EPOCHS, "\n".join(evals)
    for task in ("batch_1.epoch_1", "batch_1.epoch_2", "batch_1.next_batch", "batch_2.epoch_1", "batch_2.epoch_2",
                 "select", "register"):
        assert f"end task task_id={task} " in log, f"{task} did not run"
