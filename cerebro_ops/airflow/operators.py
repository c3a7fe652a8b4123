"""Airflow operators: one small operator per plan step, all thin wrappers over ``cerebro_ops.study``.

Parsing a DAG that uses these operators imports only Airflow and the pure core (spec, params, plan):
Spark, TensorFlow and ``cerebro_ops.study`` are imported inside :meth:`CerebroStepOperator.execute`.

Spark master, in order of precedence (for prepare / partition / epoch):
  1. the Airflow connection ``conn_id`` (default ``spark_default``) if it exists:
     conn_type ``spark`` → its host (+ ``:port``), e.g. ``local[2]``, ``spark://h:7077``, ``yarn``;
     conn_type ``spark_connect`` → ``SparkConnectHook(conn_id).get_connection_url()`` (an ``sc://`` URL);
  2. otherwise ``spec.runtime.spark_master``.
Pass ``conn_id=None`` to always use the spec's master. Note: ``airflow connections create-default-connections``
creates ``spark_default`` with host ``yarn``; delete or edit it if you do not run on YARN.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

from airflow.sdk import BaseOperator

from ..plan import KINDS

log = logging.getLogger(__name__)

SPARK_STEPS = ("prepare", "partition", "epoch")
_SUMMARY_MAX_KEYS = 32
_SUMMARY_MAX_STR = 500


class CerebroStepOperator(BaseOperator):
    """Run one step of a cerebro-ops study (see :mod:`cerebro_ops.plan`)."""

    template_fields = ("spec_path",)
    ui_color = "#e8f1fb"

    def __init__(self, *, spec_path: str, step: str, epoch: int | None = None,
                 conn_id: str | None = "spark_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if step not in KINDS:
            raise ValueError(f"step {step!r} is not one of {', '.join(KINDS)}")
        if (step == "epoch") != (epoch is not None):
            raise ValueError("epoch must be given for step 'epoch' and only for it")
        self.spec_path = spec_path
        self.step = step
        self.epoch = epoch
        self.conn_id = conn_id
        self._spark = None

    # ------------------------------------------------------------------------------------------ execute
    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException

        from .. import study
        from ..errors import DataError, SpecError, StudyFailed
        from ..params import validate_overrides
        from ..spec import load_spec

        run_id = _run_id(context)
        try:
            spec = load_spec(self.spec_path)
            spark = self._get_spark(spec) if self._needs_spark(study, spec, run_id) else None
            if self.step == "prepare":
                overrides = validate_overrides(spec, dict(context.get("params") or {}))
                tags = {"airflow.dag_id": _dag_id(context, self), "airflow.run_id": run_id}
                self.log.info("prepare %s run %s with overrides %s", spec.name, run_id, overrides)
                result = study.prepare(spec, run_id, spark=spark, overrides=overrides, tags=tags)
            elif self.step == "partition":
                result = study.partition(spec, run_id, spark=spark)
            elif self.step == "epoch":
                result = study.run_epoch(spec, run_id, self.epoch, spark=spark)
            elif self.step == "select":
                result = study.select(spec, run_id)
            else:
                result = study.register(spec, run_id)
        except (SpecError, DataError, StudyFailed) as exc:
            # Deterministic failures: retrying cannot help, so fail the task without retries.
            raise AirflowFailException(str(exc)) from exc
        self.log.info("%s result: %s", self.task_id, _describe(result))
        if self.step == "epoch":
            return _summary(result) if isinstance(result, dict) else None
        return None

    # ------------------------------------------------------------------------------------------ spark
    def _needs_spark(self, study: Any, spec: Any, run_id: str) -> bool:
        """prepare/partition always; an epoch only if it will train (no Spark session for a no-op epoch)."""
        if self.step not in SPARK_STEPS:
            return False
        if self.step == "epoch" and hasattr(study, "load_state"):
            state = study.load_state(spec, run_id)  # raises DataError if the run was never prepared
            return state.get("epochs_done", 0) < self.epoch <= state.get("epochs", self.epoch)
        return True

    def resolve_master(self, spec: Any) -> str:
        """The Spark master for this task: the Airflow connection if present, else the spec's."""
        if self.conn_id:
            from airflow.sdk import BaseHook
            from airflow.sdk.exceptions import AirflowNotFoundException

            try:
                conn = BaseHook.get_connection(self.conn_id)
            except AirflowNotFoundException:
                conn = None
            if conn is not None:
                if conn.conn_type == "spark_connect":
                    from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

                    return SparkConnectHook(self.conn_id).get_connection_url()
                if conn.conn_type == "spark" and conn.host:
                    host = conn.host.strip()
                    return f"{host}:{conn.port}" if conn.port else host
                self.log.warning("connection %r has conn_type %r and no usable host; using the spec's master",
                                 self.conn_id, conn.conn_type)
        return spec.runtime.spark_master

    def _get_spark(self, spec: Any):
        from ..spark.session import get_spark

        master = self.resolve_master(spec)
        self.log.info("Spark master: %s", master.split(";", 1)[0])  # never log sc:// tokens
        self._spark = get_spark(master)
        return self._spark

    def on_kill(self) -> None:
        """Cancel this process's running Spark jobs; never raises."""
        spark = self._spark
        try:
            if spark is None and "pyspark" in sys.modules:  # do not import Spark just to cancel nothing
                from pyspark.sql import SparkSession

                spark = SparkSession.getActiveSession()
            if spark is None:
                return
            if type(spark).__module__.startswith("pyspark.sql.connect"):
                spark.interruptAll()
            else:
                spark.sparkContext.cancelAllJobs()
            self.log.info("cancelled running Spark jobs")
        except Exception:  # noqa: BLE001 - on_kill must not raise
            self.log.exception("could not cancel Spark jobs")


class CerebroPrepareOperator(CerebroStepOperator):
    def __init__(self, *, spec_path: str, **kwargs: Any) -> None:
        super().__init__(spec_path=spec_path, step="prepare", **kwargs)


class CerebroPartitionOperator(CerebroStepOperator):
    def __init__(self, *, spec_path: str, **kwargs: Any) -> None:
        super().__init__(spec_path=spec_path, step="partition", **kwargs)


class CerebroEpochOperator(CerebroStepOperator):
    def __init__(self, *, spec_path: str, epoch: int, **kwargs: Any) -> None:
        super().__init__(spec_path=spec_path, step="epoch", epoch=epoch, **kwargs)


class CerebroSelectOperator(CerebroStepOperator):
    def __init__(self, *, spec_path: str, **kwargs: Any) -> None:
        kwargs.setdefault("conn_id", None)
        super().__init__(spec_path=spec_path, step="select", **kwargs)


class CerebroRegisterOperator(CerebroStepOperator):
    def __init__(self, *, spec_path: str, **kwargs: Any) -> None:
        kwargs.setdefault("conn_id", None)
        super().__init__(spec_path=spec_path, step="register", **kwargs)


OPERATORS: dict[str, type[CerebroStepOperator]] = {
    "prepare": CerebroPrepareOperator,
    "partition": CerebroPartitionOperator,
    "epoch": CerebroEpochOperator,
    "select": CerebroSelectOperator,
    "register": CerebroRegisterOperator,
}


# ---------------------------------------------------------------------------------------------- helpers

def _run_id(context: Any) -> str:
    run_id = context.get("run_id")
    if not run_id and context.get("dag_run") is not None:
        run_id = context["dag_run"].run_id
    if not run_id:
        raise ValueError("no run_id in the task context")
    return str(run_id)


def _dag_id(context: Any, op: BaseOperator) -> str:
    dag = context.get("dag")
    if dag is not None:
        return dag.dag_id
    dag_run = context.get("dag_run")
    return dag_run.dag_id if dag_run is not None else op.dag_id


def _describe(result: Any) -> Any:
    """What to log of a step's result: a summary of a dict, the head of a list (leaderboard)."""
    if isinstance(result, dict):
        return _summary(result)
    if isinstance(result, list):
        return f"{len(result)} rows; top: {[_summary(r) if isinstance(r, dict) else r for r in result[:3]]}"
    return result


def _summary(result: dict) -> dict:
    """A small, JSON-safe summary for XCom: scalar fields only, short strings, bounded size."""
    out: dict[str, Any] = {}
    for k, v in result.items():
        if len(out) >= _SUMMARY_MAX_KEYS:
            break
        if isinstance(v, (bool, int, float)) or v is None:
            out[str(k)] = v
        elif isinstance(v, str):
            out[str(k)] = v[:_SUMMARY_MAX_STR]
        elif isinstance(v, (list, tuple, dict)) and len(v) <= 16 and all(
                isinstance(x, (bool, int, float, str)) or x is None for x in (v.values() if isinstance(v, dict) else v)):
            out[str(k)] = dict(v) if isinstance(v, dict) else list(v)
    return out


class InvalidSpecOperator(BaseOperator):
    """Placeholder task of a ``cerebro_<stem>_invalid`` DAG: always fails with the spec's error message."""

    ui_color = "#fde2e2"

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("retries", 0)
        super().__init__(**kwargs)
        self.message = message

    def execute(self, context: Any) -> None:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(self.message)


class DataLandedOperator(BaseOperator):
    """Emits the study's data-source Asset event (set ``outlets=[asset]``); does nothing else."""

    def execute(self, context: Any) -> None:
        self.log.info("new data landed; emitting asset events for %s", [getattr(a, "uri", a) for a in self.outlets])
