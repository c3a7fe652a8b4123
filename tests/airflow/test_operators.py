"""CerebroStepOperator.execute against a fake study module: dispatch, params, Spark master, XCom, on_kill."""
import sys
import types
from pathlib import Path

import pytest

from .conftest import write_spec

pytestmark = pytest.mark.airflow


@pytest.fixture
def spec_path(tmp_path):
    return str(write_spec(tmp_path, "t1"))


@pytest.fixture
def fake_study(monkeypatch):
    calls = []
    mod = types.ModuleType("cerebro_ops.study")

    def prepare(spec, run_id, spark=None, overrides=None, tags=None):
        calls.append(("prepare", spec.name, run_id, spark, overrides, tags))
        return {"run_id": run_id, "configs": {"m1": {}}, "big": list(range(1000))}

    def partition(spec, run_id, spark=None):
        calls.append(("partition", run_id, spark))
        return {"partitioned": True}

    def run_epoch(spec, run_id, epoch, spark=None):
        calls.append(("epoch", run_id, epoch, spark))
        return {"epoch": epoch, "wall_s": 1.5, "live_models": 2, "failed": ["m3"], "blob": object()}

    def select(spec, run_id):
        calls.append(("select", run_id))
        return [{"model_id": "m1", "rank": 1}]

    def register(spec, run_id):
        calls.append(("register", run_id))
        return {"model_id": "m1", "promoted": True}

    for f in (prepare, partition, run_epoch, select, register):
        setattr(mod, f.__name__, f)
    import cerebro_ops
    monkeypatch.setitem(sys.modules, "cerebro_ops.study", mod)
    monkeypatch.setattr(cerebro_ops, "study", mod, raising=False)
    return calls


@pytest.fixture
def fake_spark(monkeypatch):
    masters = []
    import cerebro_ops.spark.session as session

    def get_spark(master, app_name="cerebro-ops"):
        masters.append(master)
        return f"spark<{master}>"

    monkeypatch.setattr(session, "get_spark", get_spark)
    return masters


@pytest.fixture
def connections(monkeypatch):
    """Airflow connections by id (none by default); BaseHook.get_connection reads from it."""
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


def test_prepare_validates_params_and_tags(spec_path, fake_study, fake_spark, connections):
    from cerebro_ops.airflow.operators import CerebroPrepareOperator

    op = CerebroPrepareOperator(task_id="prepare", spec_path=spec_path)
    out = op.execute(_ctx({"seed": 5, "epochs": 2, "num_configs": 4, "source": "/tmp/x.parquet"}))
    assert out is None  # prepare's (large) state stays out of XCom
    (call,) = fake_study
    assert call[:4] == ("prepare", "t1", "manual__1", "spark<local[2]>")
    assert call[4] == {"seed": 5, "epochs": 2, "num_configs": 4, "source": "/tmp/x.parquet"}
    assert call[5] == {"airflow.dag_id": "cerebro_t1", "airflow.run_id": "manual__1"}


@pytest.mark.parametrize("params, field", [({"epochs": 9}, "epochs"), ({"seed": True}, "seed"),
                                           ({"evil": "__import__('os')"}, "evil")])
def test_prepare_bad_params_fail_without_retry(spec_path, fake_study, fake_spark, connections, params, field):
    from airflow.sdk.exceptions import AirflowFailException

    from cerebro_ops.airflow.operators import CerebroPrepareOperator

    op = CerebroPrepareOperator(task_id="prepare", spec_path=spec_path)
    with pytest.raises(AirflowFailException, match=field):
        op.execute(_ctx(params))
    assert fake_study == []


def test_epoch_pushes_small_summary(spec_path, fake_study, fake_spark, connections):
    from cerebro_ops.airflow.operators import CerebroEpochOperator

    op = CerebroEpochOperator(task_id="epoch_2", spec_path=spec_path, epoch=2)
    out = op.execute({"dag_run": types.SimpleNamespace(run_id="sched__2", dag_id="cerebro_t1"), "params": {}})
    assert fake_study == [("epoch", "sched__2", 2, "spark<local[2]>")]
    assert out == {"epoch": 2, "wall_s": 1.5, "live_models": 2, "failed": ["m3"]}


def test_noop_epoch_gets_no_spark(spec_path, fake_study, fake_spark, connections, monkeypatch):
    import cerebro_ops

    from cerebro_ops.airflow.operators import CerebroEpochOperator

    monkeypatch.setattr(cerebro_ops.study, "load_state", lambda spec, run_id: {"epochs": 2, "epochs_done": 1},
                        raising=False)
    for epoch, spark in ((1, None), (2, "spark<local[2]>"), (3, None)):
        fake_study.clear()
        CerebroEpochOperator(task_id=f"epoch_{epoch}", spec_path=spec_path, epoch=epoch).execute(_ctx())
        assert fake_study == [("epoch", "manual__1", epoch, spark)]


def test_select_and_register_need_no_spark(spec_path, fake_study, fake_spark, connections):
    from cerebro_ops.airflow.operators import CerebroRegisterOperator, CerebroSelectOperator

    CerebroSelectOperator(task_id="select", spec_path=spec_path).execute(_ctx())
    CerebroRegisterOperator(task_id="register", spec_path=spec_path).execute(_ctx())
    assert fake_study == [("select", "manual__1"), ("register", "manual__1")]
    assert fake_spark == []


def test_partition_uses_spark(spec_path, fake_study, fake_spark, connections):
    from cerebro_ops.airflow.operators import CerebroPartitionOperator

    CerebroPartitionOperator(task_id="partition", spec_path=spec_path).execute(_ctx())
    assert fake_study == [("partition", "manual__1", "spark<local[2]>")]


def test_invalid_spec_at_execute_fails_fast(tmp_path, fake_study, fake_spark, connections):
    from airflow.sdk.exceptions import AirflowFailException

    from cerebro_ops.airflow.operators import CerebroSelectOperator

    op = CerebroSelectOperator(task_id="select", spec_path=str(tmp_path / "missing.yaml"))
    with pytest.raises(AirflowFailException, match="does not exist"):
        op.execute(_ctx())


def test_master_resolution(spec_path, connections):
    from airflow.sdk import Connection

    from cerebro_ops.airflow.operators import CerebroStepOperator
    from cerebro_ops.spec import load_spec

    spec = load_spec(spec_path)
    op = CerebroStepOperator(task_id="p", spec_path=spec_path, step="partition")
    assert op.resolve_master(spec) == "local[2]"  # no connection → the spec's master
    connections["spark_default"] = Connection(conn_id="spark_default", conn_type="spark", host="local[3]")
    assert op.resolve_master(spec) == "local[3]"
    connections["spark_default"] = Connection(conn_id="spark_default", conn_type="spark", host="spark://h",
                                              port=7077)
    assert op.resolve_master(spec) == "spark://h:7077"
    connections["spark_default"] = Connection(conn_id="spark_default", conn_type="spark_connect", host="sc-host",
                                              port=15002)
    assert op.resolve_master(spec).startswith("sc://sc-host:15002")
    connections["spark_default"] = Connection(conn_id="spark_default", conn_type="http", host="x")
    assert op.resolve_master(spec) == "local[2]"
    op2 = CerebroStepOperator(task_id="p2", spec_path=spec_path, step="partition", conn_id=None)
    connections["spark_default"] = Connection(conn_id="spark_default", conn_type="spark", host="yarn")
    assert op2.resolve_master(spec) == "local[2]"


def test_constructor_checks():
    from cerebro_ops.airflow.operators import CerebroStepOperator

    with pytest.raises(ValueError):
        CerebroStepOperator(task_id="x", spec_path="s.yaml", step="train")
    with pytest.raises(ValueError):
        CerebroStepOperator(task_id="x", spec_path="s.yaml", step="epoch")
    assert CerebroStepOperator.template_fields == ("spec_path",)


def test_on_kill_cancels_jobs_and_never_raises():
    from cerebro_ops.airflow.operators import CerebroStepOperator

    op = CerebroStepOperator(task_id="e", spec_path="s.yaml", step="epoch", epoch=1)
    op.on_kill()  # no session: nothing to do

    cancelled = []
    op._spark = types.SimpleNamespace(sparkContext=types.SimpleNamespace(cancelAllJobs=lambda: cancelled.append(1)))
    op.on_kill()
    assert cancelled == [1]

    connect_cls = type("SparkSession", (), {"__module__": "pyspark.sql.connect.session",
                                            "interruptAll": lambda self: cancelled.append(2)})
    op._spark = connect_cls()
    op.on_kill()
    assert cancelled == [1, 2]

    op._spark = types.SimpleNamespace(sparkContext=None)  # broken session: logged, not raised
    op.on_kill()


def test_operators_module_imports_nothing_heavy():
    import subprocess

    code = ("import sys, cerebro_ops.airflow.operators, cerebro_ops.airflow.dag_factory; "
            "bad = [m for m in ('pyspark', 'tensorflow', 'mlflow', 'cerebro_ops.study') if m in sys.modules]; "
            "assert not bad, bad")
    import os
    from .conftest import AIRFLOW_ENV
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).resolve().parents[2]),
                   env={**os.environ, **AIRFLOW_ENV})
