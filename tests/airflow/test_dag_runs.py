"""Whole DAG runs through Airflow's scheduler logic (`dag.test()`, a fresh metadata DB) with a fake study:
which tasks run, which are skipped, and that select and register still run after skipped epochs and batches.
The study functions are the fake of fake_study.py (no Spark, no training), so this takes seconds per run."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import REPO, write_spec
from .test_dagbag import TPE_SPEC

pytestmark = pytest.mark.airflow

RUNNER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {repo!r})
    from airflow.utils import db
    db.resetdb()
    from tests.airflow import fake_study
    calls = []
    fake_study.install(calls)
    import cerebro_ops.spark.session as session
    session.get_spark = lambda master, app_name="", **_: "spark<" + master + ">"
    from cerebro_ops.airflow.dag_factory import build_dags
    dags = build_dags({specs!r})
    out = []
    for dag_id, conf in {runs!r}:
        calls.clear()
        run = dags[dag_id].test(run_conf=conf)
        states = {{ti.task_id: str(ti.state.value if hasattr(ti.state, "value") else ti.state)
                   for ti in run.get_task_instances()}}
        out.append({{"state": str(run.state), "tasks": states, "calls": [c[0] for c in calls]}})
    print("RESULT " + json.dumps(out))
""")

DAG_FILE = ("import sys\nsys.path.insert(0, {repo!r})\nfrom cerebro_ops.airflow.dag_factory import build_dags\n"
            "globals().update(build_dags({specs!r}))\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dag_runs")
    specs, dags, home = tmp / "specs", tmp / "dags", tmp / "home"
    for d in (specs, dags, home):
        d.mkdir()
    write_spec(specs, "t1")  # grid, 3 epochs
    (specs / "tpe.yaml").write_text(TPE_SPEC)  # 6 configs in 3 batches of 2, 2 epochs
    (dags / "cerebro.py").write_text(DAG_FILE.format(repo=str(REPO), specs=str(specs)))
    scenarios = [("cerebro_t1", {"epochs": 2}),
                 ("cerebro_tpe", {"epochs": 1, "num_configs": 4}),
                 ("cerebro_t1", {"learning_rate": 5})]
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
           "PYTHONPATH": str(REPO)}
    code = RUNNER.format(repo=str(REPO), specs=str(specs), runs=scenarios)
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(REPO), capture_output=True, text=True,
                          timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    result = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(result[len("RESULT "):]), log


def test_fewer_epochs_skip_the_extra_epoch_and_still_select_and_register(runs):
    run = runs[0][0]
    assert run["state"] == "success"
    assert run["tasks"] == {"prepare": "success", "partition": "success", "epoch_1": "success",
                            "epoch_2": "success", "epoch_3": "skipped", "select": "success", "register": "success"}
    assert run["calls"] == ["prepare", "partition", "epoch", "epoch", "epoch", "select", "register"]


def test_fewer_tpe_batches_skip_the_extra_batch_and_still_select_and_register(runs):
    run = runs[0][1]
    assert run["state"] == "success"
    assert run["tasks"] == {
        "prepare": "success", "partition": "success",
        "batch_1.epoch_1": "success", "batch_1.epoch_2": "skipped", "batch_1.next_batch": "success",
        "batch_2.epoch_1": "success", "batch_2.epoch_2": "skipped", "batch_2.next_batch": "skipped",
        "batch_3.epoch_1": "skipped", "batch_3.epoch_2": "skipped",
        "select": "success", "register": "success"}


def test_unknown_param_fails_prepare_before_any_work(runs):
    run = runs[0][2]
    assert run["state"] == "failed"
    assert run["tasks"]["prepare"] == "failed"
    assert {s for t, s in run["tasks"].items() if t != "prepare"} == {"upstream_failed"}
    assert run["calls"] == []  # the study was never called: no Spark, no MLflow run, no store files
    assert "trigger param 'learning_rate': is not a known param" in runs[1]
