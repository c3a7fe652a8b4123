"""The study DAG through production-shaped services on the driver host: PostgreSQL behind Airflow 3
(LocalExecutor; api-server, scheduler, dag-processor and triggerer as separate processes) and behind an
MLflow tracking server that proxies artifacts; the DAG is triggered through the REST API with a JWT, its
Spark steps run on the standalone cluster across the worker hosts, and the tasks reach MLflow over HTTP.
The same seed must give the same leaderboard as local[2] and as the CLI on the cluster."""
from __future__ import annotations

import math

import pytest

from . import services as svc
from . import topology as topo
from .conftest import REPO, STUDY, assert_same_leaderboard, fingerprint, hop_records, study_spec

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.spark, pytest.mark.airflow]


@pytest.fixture(scope="module")
def backing_services(hosts, cluster_tmp):
    reason = svc.unsupported()
    if reason:
        pytest.skip(f"production services test: {reason}")
    root = cluster_tmp / "services"
    pg = svc.Postgres(hosts, root)
    pg.start()
    try:
        mlflow = svc.MlflowServer(hosts, root)
        mlflow.spawn()
        yield pg, mlflow
    finally:
        pg.stop()


def test_study_dag_on_airflow_postgres_and_mlflow_server(hosts, spark_cluster, dummy_data, cluster_tmp,
                                                         backing_services, local_reference, netns_run):
    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec
    from tests.study_files import mlflow_runs

    pg, mlflow = backing_services
    root = cluster_tmp / "services"
    draft = study_spec(root / "draft.yaml", dummy_data, root / "store", spark_cluster.master, mlflow.url)
    dags = root / "dags"
    spec_path = svc.copy_dag_factory(REPO, dags, draft.read_text(), STUDY)
    spec = load_spec(spec_path)
    airflow = svc.Airflow(hosts, root, dags, {"CEREBRO_DRIVER_HOST": topo.DRIVER.ip,
                                               "SPARK_CONF_DIR": str(spark_cluster.conf_dir)})
    airflow.start()  # its migration runs while the MLflow server creates its tables
    mlflow.wait()
    token = airflow.token()
    airflow.wait_dag(spec.dag_id, token)
    dag_run = airflow.trigger(spec.dag_id, token)
    finished = airflow.wait_run(spec.dag_id, dag_run, token)
    states = airflow.task_states(spec.dag_id, dag_run, token)
    assert finished["state"] == "success", f"{states}; logs in {hosts.logs} and {airflow.home / 'logs'}"
    assert {"prepare", "partition", "select", "register"} <= set(states)
    assert all(s in ("success", "skipped") for s in states.values()), states

    # the same leaderboard as local[2] and as the CLI on the cluster
    run_id = study.latest_run(spec)
    board = fingerprint(spec_path, run_id)
    assert_same_leaderboard(board, local_reference)
    assert_same_leaderboard(board, netns_run[2])
    peers = {r.get("peer") for r in hop_records(root / "store", run_id) if r["status"] == "ok"}
    assert peers == {w.ip for w in topo.WORKERS}

    # MLflow over HTTP: one parent run, one child per config with its last epoch's metrics; the artifacts
    # went through the server (--serve-artifacts) into its destination folder
    parent, children = mlflow_runs(mlflow.url, study.load_state(spec, run_id))
    assert parent is not None and len(children) == len(board)
    for child in children:
        model_id = child.data.tags["cerebro.model_id"]
        last = board[model_id]["history"][-1]
        assert math.isclose(child.data.metrics["val_accuracy"], last["val_accuracy"], abs_tol=1e-6)
    assert any(p.is_file() for p in mlflow.artifacts.rglob("*")), "no artifact reached the MLflow server"
    # both services keep their state in PostgreSQL
    assert int(pg.psql(f"SELECT count(*) FROM dag_run WHERE dag_id = '{spec.dag_id}'", db=topo.AIRFLOW_DB)) == 1
    assert int(pg.psql("SELECT count(*) FROM runs", db=topo.MLFLOW_DB)) >= len(board) + 1
