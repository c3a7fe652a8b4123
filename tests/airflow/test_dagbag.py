"""DAG parsing through a real Airflow DagBag: ids, task order, params, schedules, broken specs."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from .conftest import AIRFLOW_ENV, REPO, tpe_spec_text, write_spec

pytestmark = pytest.mark.airflow

EXPECTED_ORDER = ["prepare", "partition", "epoch_1", "epoch_2", "epoch_3", "select", "register"]
TPE_ORDER = ["prepare", "partition", "batch_1.epoch_1", "batch_1.epoch_2", "batch_1.next_batch",
             "batch_2.epoch_1", "batch_2.epoch_2", "batch_2.next_batch", "batch_3.epoch_1", "batch_3.epoch_2",
             "select", "register"]
TPE_SPEC = tpe_spec_text("tpe")

DAG_FILE = """\
# a DAG file for the tests: airflow dag factory over a temporary specs dir
import sys
sys.path.insert(0, {repo!r})
from cerebro_ops.airflow.dag_factory import build_dags
globals().update(build_dags({specs!r}))
"""


@pytest.fixture
def dag_folder(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    write_spec(specs, "t1")
    write_spec(specs, "cron", epochs=2, extra='schedule: "15 3 * * 1"\n')
    write_spec(specs, "daily", epochs=1, extra="schedule: '@daily'\n")
    write_spec(specs, "landing", epochs=2, extra="schedule: on_data_change\n")
    (specs / "tpe.yaml").write_text(TPE_SPEC)
    (specs / "broken.yaml").write_text("name: [bad\n")
    write_spec(specs, "typo", extra="trian: {epochs: 2}\n")  # unknown key → SpecError
    write_spec(specs, "zz_dup", name="t1")  # same study name as t1.yaml
    (specs / "notes.txt").write_text("not a spec")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "cerebro_test_dags.py").write_text(DAG_FILE.format(repo=str(REPO), specs=str(specs)))
    return dags


@pytest.fixture
def dagbag(dag_folder):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(dag_folder))


def _order(dag):
    """Task ids in dependency order (the graph is a chain, so this is unique)."""
    ids = []
    roots = [t for t in dag.tasks if not t.upstream_task_ids]
    assert len(roots) == 1
    t = roots[0]
    while True:
        ids.append(t.task_id)
        down = list(t.downstream_list)
        if not down:
            return ids
        assert len(down) == 1
        t = down[0]


def test_no_import_errors_and_expected_ids(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {
        "cerebro_t1", "cerebro_cron", "cerebro_daily", "cerebro_landing", "cerebro_landing_data_landed", "cerebro_tpe",
        "cerebro_broken_invalid", "cerebro_typo_invalid", "cerebro_zz_dup_invalid"}


def test_task_ids_and_order(dagbag):
    dag = dagbag.dags["cerebro_t1"]
    assert _order(dag) == EXPECTED_ORDER
    assert sorted(dag.task_ids) == sorted(EXPECTED_ORDER)
    assert _order(dagbag.dags["cerebro_daily"]) == ["prepare", "partition", "epoch_1", "select", "register"]
    from cerebro_ops.airflow.operators import CerebroEpochOperator, CerebroStepOperator, SparkStepOperator

    for t in dag.tasks:
        assert isinstance(t, CerebroStepOperator)
        assert t.spec_path.endswith("t1.yaml") and os.path.isabs(t.spec_path)
        assert t.retries == 2 and t.retry_delay.total_seconds() == 10
    e2 = dag.get_task("epoch_2")
    assert isinstance(e2, CerebroEpochOperator) and (e2.epoch, e2.batch) == (2, 0) and e2.conn_id == "spark_default"
    assert [t.task_id for t in dag.tasks if isinstance(t, SparkStepOperator)] == EXPECTED_ORDER[:5]


def test_tpe_batches_are_task_groups(dagbag):
    from cerebro_ops.airflow.operators import CerebroEpochOperator, CerebroNextBatchOperator

    dag = dagbag.dags["cerebro_tpe"]
    assert _order(dag) == TPE_ORDER
    assert sorted(dag.task_group.children) == ["batch_1", "batch_2", "batch_3", "partition", "prepare", "register",
                                                "select"]
    assert sorted(dag.task_group.children["batch_1"].children) == ["batch_1.epoch_1", "batch_1.epoch_2",
                                                                   "batch_1.next_batch"]
    assert sorted(dag.task_group.children["batch_3"].children) == ["batch_3.epoch_1", "batch_3.epoch_2"]
    e = dag.get_task("batch_2.epoch_2")
    assert isinstance(e, CerebroEpochOperator) and (e.epoch, e.batch) == (2, 1)
    n = dag.get_task("batch_2.next_batch")
    assert isinstance(n, CerebroNextBatchOperator) and n.batch == 1 and not hasattr(n, "conn_id")


def test_steps_after_a_skippable_step_run_unless_something_failed(dagbag):
    for dag_id in ("cerebro_t1", "cerebro_tpe"):
        dag = dagbag.dags[dag_id]
        rules = {t.task_id: t.trigger_rule for t in dag.tasks}
        for task_id, rule in rules.items():
            kind = task_id.rsplit(".", 1)[-1].split("_")[0]
            expected = "none_failed" if kind in ("epoch", "next", "select") else "all_success"
            assert rule == expected, (dag_id, task_id, rule)


def test_dag_settings_and_params(dagbag):
    dag = dagbag.dags["cerebro_t1"]
    assert set(dag.tags) == {"cerebro-ops", "t1"}
    assert dag.schedule is None
    assert dag.max_active_tasks == 1
    params = dag.params
    assert set(params.keys()) == {"seed", "epochs", "num_configs", "source"}
    assert params["epochs"] == 3 and params["seed"] == 0 and params["source"] == "/tmp/x.parquet"
    ep = params.get_param("epochs")
    assert ep.schema["type"] == "integer" and ep.schema["minimum"] == 1 and ep.schema["maximum"] == 3
    assert ep.schema["title"] and ep.description
    assert params.get_param("source").schema["maxLength"] == 1024
    # at most the spec's own num_configs: a trigger cannot ask for more runs and hops than the spec's author did
    assert params.get_param("num_configs").schema["maximum"] == params["num_configs"] == 4


def test_param_validation_in_airflow(dagbag):
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.dags["cerebro_t1"].params
    assert params.get_param("epochs").resolve(2) == 2
    for key, bad in (("epochs", 4), ("epochs", 0), ("epochs", "2"), ("seed", -1), ("num_configs", 10001),
                     ("source", "x" * 1025)):
        with pytest.raises(ParamValidationError):
            params.get_param(key).resolve(bad)


def test_schedules(dagbag):
    assert dagbag.dags["cerebro_cron"].schedule == "15 3 * * 1"
    assert dagbag.dags["cerebro_daily"].schedule == "@daily"
    from airflow.sdk import Asset

    sched = dagbag.dags["cerebro_landing"].schedule
    assert isinstance(sched, list) and len(sched) == 1 and isinstance(sched[0], Asset)
    assert sched[0].name == "cerebro_landing_source" and sched[0].uri == "file:///tmp/x.parquet"
    emitter = dagbag.dags["cerebro_landing_data_landed"]
    assert emitter.schedule is None
    (task,) = emitter.tasks
    assert task.outlets == [sched[0]]


def test_broken_specs_become_placeholders(dagbag):
    dag = dagbag.dags["cerebro_broken_invalid"]
    assert "invalid-spec" in dag.tags
    assert "broken.yaml" in dag.description and "not valid YAML" in dag.description
    assert [t.task_id for t in dag.tasks] == ["invalid_spec"]
    typo = dagbag.dags["cerebro_typo_invalid"]
    assert "trian" in typo.description and "did you mean" in typo.description
    dup = dagbag.dags["cerebro_zz_dup_invalid"]
    assert "cerebro_t1" in dup.description and "t1.yaml" in dup.description
    # the good DAGs are all still there
    assert "cerebro_t1" in dagbag.dags and _order(dagbag.dags["cerebro_t1"]) == EXPECTED_ORDER


def test_placeholder_task_fails_with_message(dagbag):
    from airflow.sdk.exceptions import AirflowFailException

    task = dagbag.dags["cerebro_broken_invalid"].get_task("invalid_spec")
    with pytest.raises(AirflowFailException, match="not valid YAML"):
        task.execute({})


def test_dags_serialize(dagbag):
    from airflow.serialization.serialized_objects import DagSerialization

    for dag in dagbag.dags.values():
        data = DagSerialization.to_dict(dag)
        json.dumps(data)
        back = DagSerialization.from_dict(data)
        assert sorted(back.task_ids) == sorted(dag.task_ids)


def test_repo_dag_file_imports_cleanly():
    """dags/cerebro_dags.py (whatever specs are in dags/specs) has no import errors."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "cerebro_dags.py"))
    assert bag.import_errors == {}
    for dag_id, dag in bag.dags.items():
        assert dag_id.startswith("cerebro_")
        if "invalid-spec" not in dag.tags and not dag_id.endswith("_data_landed"):
            assert [t.task_id for t in dag.tasks][:2] == ["prepare", "partition"]


def test_parse_is_cheap_and_imports_no_spark_or_tensorflow(dag_folder):
    code = textwrap.dedent(f"""
        import sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(dag_folder)!r})
        bag2 = DagBag(dag_folder={str(REPO / 'dags')!r})
        assert not bag.import_errors and not bag2.import_errors, (bag.import_errors, bag2.import_errors)
        assert 'cerebro_t1' in bag.dags
        heavy = [m for m in ('tensorflow', 'keras', 'pyspark', 'mlflow', 'cerebro_ops.study') if m in sys.modules]
        assert not heavy, heavy
    """)
    env = {**os.environ, **AIRFLOW_ENV}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
