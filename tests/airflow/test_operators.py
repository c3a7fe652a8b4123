"""The step operators against a fake study module: which study function each runs, Params, Spark master,
skipped steps, XCom, templating, on_kill."""
import os
import subprocess
import sys
import types

import pytest

from . import fake_study as fake
from .conftest import AIRFLOW_ENV, REPO, tpe_spec_text, write_spec

pytestmark = pytest.mark.airflow

TPE_SPEC = tpe_spec_text("t1")


@pytest.fixture
def spec_path(tmp_path):
    return str(write_spec(tmp_path, "t1"))


@pytest.fixture
def tpe_spec_path(tmp_path):
    p = tmp_path / "tpe.yaml"
    p.write_text(TPE_SPEC)
    return str(p)


@pytest.fixture
def fake_study(monkeypatch):
    calls = []
    fake.install(calls, monkeypatch)
    return calls


@pytest.fixture
def fake_spark(monkeypatch):
    masters = []
    import cerebro_ops.spark.session as session

    def get_spark(master, app_name="cerebro-ops", **_):
        masters.append(master)
        return f"spark<{master}>"

    monkeypatch.setattr(session, "get_spark", get_spark)
    return masters


@pytest.fixture
def connections(monkeypatch):
    """Airflow connections by id (none by default); every hook's get_connection reads from it."""
    from airflow.sdk import BaseHook, Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    conns: dict[str, Connection] = {}

    def get_connection(cls, conn_id):
        if conn_id not in conns:
            raise AirflowNotFoundException(f"The conn_id `{conn_id}` isn't defined")
        return conns[conn_id]

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(get_connection))
    return conns


def _ctx(params=None, run_id="manual__1"):
    return {"run_id": run_id, "params": params or {}, "dag": types.SimpleNamespace(dag_id="cerebro_t1")}


def _ops():
    from cerebro_ops.airflow import operators

    return operators


def test_prepare_validates_params_and_tags(spec_path, fake_study, fake_spark, connections):
    op = _ops().CerebroPrepareOperator(task_id="prepare", spec_path=spec_path)
    out = op.execute(_ctx({"seed": 5, "epochs": 2, "num_configs": 4, "source": "/tmp/x.parquet"}))
    assert out is None  # prepare's (large) state stays out of XCom
    (call,) = fake_study
    assert call == ("prepare", "manual__1", "spark<local[2]>", {"seed": 5, "epochs": 2, "num_configs": 4,
                                                                "source": "/tmp/x.parquet"},
                    {"airflow.dag_id": "cerebro_t1", "airflow.run_id": "manual__1"})


@pytest.mark.parametrize("params, field", [({"epochs": 9}, "epochs"), ({"seed": True}, "seed"),
                                           ({"learning_rate": 5}, "learning_rate"),
                                           ({"evil": "__import__('os')"}, "evil")])
def test_bad_params_fail_prepare_before_spark_and_without_retry(spec_path, fake_study, fake_spark, connections,
                                                                params, field):
    from airflow.sdk.exceptions import AirflowFailException

    from cerebro_ops.core.errors import ParamsError
    from cerebro_ops.core.params import validate_overrides
    from cerebro_ops.core.spec import load_spec

    with pytest.raises(ParamsError) as expected:
        validate_overrides(load_spec(spec_path), params)
    op = _ops().CerebroPrepareOperator(task_id="prepare", spec_path=spec_path)
    with pytest.raises(AirflowFailException) as ei:
        op.execute(_ctx(params))
    assert str(ei.value) == str(expected.value) and f"'{field}'" in str(ei.value)
    assert fake_study == [] and fake_spark == []  # nothing started: no study call, no Spark session


def test_epoch_trains_with_spark_and_pushes_small_summary(spec_path, fake_study, fake_spark, connections):
    op = _ops().CerebroEpochOperator(task_id="epoch_2", spec_path=spec_path, epoch=2)
    out = op.execute({"dag_run": types.SimpleNamespace(run_id="sched__2", dag_id="cerebro_t1"), "params": {}})
    assert fake_study == [("epoch", "sched__2", 0, 2, "spark<local[2]>")]
    assert out == {"epoch": 2, "batch": 0, "wall_s": 1.5, "live_models": 2, "failed": ["m3"]}


def test_epoch_beyond_the_run_is_skipped_without_spark(spec_path, fake_study, fake_spark, connections):
    from airflow.sdk.exceptions import AirflowSkipException

    ops = _ops()
    ops.CerebroPrepareOperator(task_id="prepare", spec_path=spec_path).execute(_ctx({"epochs": 2}))
    fake_spark.clear()
    ops.CerebroEpochOperator(task_id="epoch_2", spec_path=spec_path, epoch=2).execute(_ctx())
    assert fake_spark == ["local[2]"]
    with pytest.raises(AirflowSkipException, match="beyond run epochs"):
        ops.CerebroEpochOperator(task_id="epoch_3", spec_path=spec_path, epoch=3).execute(_ctx())
    assert fake_spark == ["local[2]"]  # no Spark session for the skipped epoch
    assert fake_study[-1] == ("epoch", "manual__1", 0, 3, None)


def test_tpe_epoch_and_next_batch_take_their_batch(tpe_spec_path, fake_study, fake_spark, connections):
    from airflow.sdk.exceptions import AirflowSkipException

    ops = _ops()
    ops.CerebroPrepareOperator(task_id="prepare", spec_path=tpe_spec_path).execute(_ctx({"num_configs": 4}))
    out = ops.CerebroNextBatchOperator(task_id="batch_1.next_batch", spec_path=tpe_spec_path,
                                       batch=0).execute(_ctx())
    assert out == {"batch": 0, "next_batch": 1, "models": ["m2", "m3"]}
    ops.CerebroEpochOperator(task_id="epoch_1", spec_path=tpe_spec_path, epoch=1, batch=1).execute(_ctx())
    with pytest.raises(AirflowSkipException, match="no later batch"):  # 4 configs: 2 batches of 2
        ops.CerebroNextBatchOperator(task_id="next_batch", spec_path=tpe_spec_path, batch=1).execute(_ctx())
    with pytest.raises(AirflowSkipException):
        ops.CerebroEpochOperator(task_id="epoch_1", spec_path=tpe_spec_path, epoch=1, batch=2).execute(_ctx())
    assert fake_study[1:] == [("next_batch", "manual__1", 0), ("epoch", "manual__1", 1, 1, "spark<local[2]>"),
                              ("next_batch", "manual__1", 1), ("epoch", "manual__1", 2, 1, None)]
    assert fake_spark == ["local[2]", "local[2]"]  # prepare and the one epoch that trained


def test_select_and_register_need_no_spark(spec_path, fake_study, fake_spark, connections):
    ops = _ops()
    assert ops.CerebroSelectOperator(task_id="select", spec_path=spec_path).execute(_ctx()) is None
    out = ops.CerebroRegisterOperator(task_id="register", spec_path=spec_path).execute(_ctx())
    assert out == {"model_id": "m1", "promoted": True}
    assert fake_study == [("select", "manual__1"), ("register", "manual__1")]
    assert fake_spark == []


def test_partition_joins_spark_only_for_a_run_prepare_did_not_partition(spec_path, fake_study, fake_spark,
                                                                         connections):
    ops = _ops()
    ops.CerebroPartitionOperator(task_id="partition", spec_path=spec_path).execute(_ctx())  # an older run
    assert fake_study == [("partition", "manual__1", "spark<local[2]>")]
    fake_study.clear()
    ops.CerebroPrepareOperator(task_id="prepare", spec_path=spec_path).execute(_ctx(run_id="manual__2"))
    ops.CerebroPartitionOperator(task_id="partition", spec_path=spec_path).execute(_ctx(run_id="manual__2"))
    assert fake_study[1] == ("partition", "manual__2", None)
    assert fake_spark == ["local[2]", "local[2]"]  # the older run's partition and the prepare, nothing after


def test_every_plan_kind_has_its_own_operator():
    from cerebro_ops.core.plan import KINDS

    ops = _ops().OPERATORS
    assert set(ops) == set(KINDS)
    assert len(set(ops.values())) == len(KINDS)
    for kind, cls in ops.items():
        assert cls.kind == kind, f"{cls.__name__} runs steps of kind {cls.kind!r}, not {kind!r}"


def test_invalid_spec_at_execute_fails_fast(tmp_path, fake_study, fake_spark, connections):
    from airflow.sdk.exceptions import AirflowFailException

    op = _ops().CerebroSelectOperator(task_id="select", spec_path=str(tmp_path / "missing.yaml"))
    with pytest.raises(AirflowFailException, match="does not exist"):
        op.execute(_ctx())
    assert fake_study == []


def test_master_resolution(spec_path, connections):
    from airflow.sdk import Connection

    from cerebro_ops.core.spec import load_spec

    spec = load_spec(spec_path)
    op = _ops().CerebroPartitionOperator(task_id="p", spec_path=spec_path)
    assert op.resolve_master(spec) == "local[2]"  # no connection → the spec's master
    for conn, master in [
        (dict(conn_type="spark", host="local[3]"), "local[3]"),
        (dict(conn_type="spark", host="spark://h", port=7077), "spark://h:7077"),
        (dict(conn_type="spark", host="h", port=7077), "spark://h:7077"),  # the provider adds the scheme
        (dict(conn_type="spark", host="yarn"), "yarn"),
        (dict(conn_type="spark_connect", host="sc-host", port=15002), "sc://sc-host:15002/"),
        (dict(conn_type="spark_connect", host="sc://sc-host", port=15002, password="tok"),
         "sc://sc-host:15002/;token=tok"),
        (dict(conn_type="http", host="x"), "local[2]"),  # not a Spark connection → the spec's master
        (dict(conn_type="spark"), "local[2]"),  # no host → the spec's master
    ]:
        connections["spark_default"] = Connection(conn_id="spark_default", **conn)
        assert op.resolve_master(spec) == master, conn
    connections["spark_default"] = Connection(conn_id="spark_default", conn_type="spark", host="yarn")
    op2 = _ops().CerebroPartitionOperator(task_id="p2", spec_path=spec_path, conn_id=None)
    assert op2.resolve_master(spec) == "local[2]"


def test_spec_path_is_templated(tmp_path, fake_study, fake_spark, connections):
    write_spec(tmp_path, "t1")
    op = _ops().CerebroSelectOperator(task_id="select", spec_path=str(tmp_path / "{{ params.stem }}.yaml"))
    op.render_template_fields({"params": {"stem": "t1"}})
    assert op.spec_path == str(tmp_path / "t1.yaml")
    op.execute(_ctx())
    assert fake_study == [("select", "manual__1")]


def test_on_kill_cancels_its_own_tag_and_never_raises(monkeypatch):
    """on_kill interrupts the task's tag (and this process's epoch launchers), never the whole session."""
    from cerebro_ops.spark import epoch_job, job_tags

    op = _ops().CerebroEpochOperator(task_id="e", spec_path="s.yaml", epoch=1)
    op.on_kill()  # never joined Spark: nothing to do

    calls = []

    class Session:  # a Spark Connect session, as the shared one of the local stack
        __module__ = "pyspark.sql.connect.session"

        def addTag(self, tag):
            calls.append(("add", tag))

        def interruptTag(self, tag):
            calls.append(("interrupt", tag))

        def interruptAll(self):
            raise AssertionError("every job of a shared session")

    monkeypatch.setattr("cerebro_ops.spark.session.get_spark", lambda master, app_name=None, **_: Session())
    ops = [_ops().CerebroEpochOperator(task_id=f"e{i}", spec_path="s.yaml", epoch=1) for i in range(2)]
    for o in ops:
        monkeypatch.setattr(o, "resolve_master", lambda spec: "sc://localhost:15002")
        o.spark(types.SimpleNamespace(name="t1"))
    tag = ops[0]._job_tag
    assert tag.startswith("cerebro-task-") and tag != ops[1]._job_tag
    assert calls == [("add", tag), ("add", ops[1]._job_tag)]

    import pyspark  # noqa: F401 - a task that joined Spark has it imported (on_kill checks); alone, this test had not
    launcher = epoch_job.SparkLauncher(Session(), 2)
    with job_tags.launcher_running(launcher):
        ops[0].on_kill()
    assert calls[2:] == [("interrupt", tag), ("interrupt", launcher.tag)]

    monkeypatch.setattr(job_tags, "cancel_task_jobs", lambda tag: 1 / 0)  # broken: logged, not raised
    ops[0].on_kill()


def test_parsing_and_building_operators_imports_nothing_heavy():
    code = ("import sys\n"
            "from cerebro_ops.airflow import operators as o, dag_factory\n"
            "o.CerebroPrepareOperator(task_id='p', spec_path='s.yaml')\n"
            "o.CerebroEpochOperator(task_id='e', spec_path='s.yaml', epoch=1, batch=2).on_kill()\n"
            "o.CerebroNextBatchOperator(task_id='n', spec_path='s.yaml', batch=0)\n"
            "bad = [m for m in ('pyspark', 'tensorflow', 'mlflow', 'optuna', 'cerebro_ops.study') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(REPO), env={**os.environ, **AIRFLOW_ENV})
