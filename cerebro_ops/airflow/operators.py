"""Airflow operators: one per plan step kind, each a thin wrapper over one ``cerebro_ops.study`` function.

Parsing a DAG that uses these operators imports only Airflow and the pure core (spec, params, plan): Spark,
TensorFlow and ``cerebro_ops.study`` are imported when a task runs.

Every operator loads the spec, calls its study function in :meth:`CerebroStepOperator.run_step`, and turns the
outcome into an Airflow state: our own errors (bad spec, Params or data; every config failed) fail the task
without retries, a result ``{"skipped": why}`` (an epoch or TPE batch beyond what this run was triggered with)
marks it skipped, anything else succeeds with a small summary in XCom.

Spark master of the Spark steps (prepare, partition, epoch), in order of precedence:
  1. the Airflow connection ``conn_id`` (default ``spark_default``) if it exists, read by the apache-spark
     provider: conn_type ``spark`` → ``SparkSubmitHook``'s master (``local[2]``, ``spark://h:7077``, ``yarn``);
     conn_type ``spark_connect`` → ``SparkConnectHook.get_connection_url()`` (an ``sc://`` URL);
  2. otherwise ``spec.runtime.spark_master``.
Pass ``conn_id=None`` to always use the spec's master. Note: ``airflow connections create-default-connections``
creates ``spark_default`` with host ``yarn``; delete or edit it if you do not run on YARN.
"""
from __future__ import annotations

import sys
from typing import Any

from airflow.sdk import BaseOperator

_SUMMARY_MAX_KEYS = 32
_SUMMARY_MAX_STR = 500


class CerebroStepOperator(BaseOperator):
    """One step of a cerebro-ops study run (see :mod:`cerebro_ops.core.plan`): a subclass per step `kind`, which
    may say what its study function gets besides the step's own arguments (:meth:`step_kwargs`)."""

    kind = ""

    template_fields = ("spec_path",)
    ui_color = "#e8f1fb"

    def __init__(self, *, spec_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path

    def step_kwargs(self, spec: Any, run_id: str, context: Any) -> dict:
        return {}

    def run_step(self, spec: Any, run_id: str, context: Any) -> Any:
        """Run this step of run `run_id` (the study function of its kind: plan.step_call); return its result."""
        from cerebro_ops import study
        from cerebro_ops.core.plan import step_call

        name, args = step_call(self)
        return getattr(study, name)(spec, run_id, *args, **self.step_kwargs(spec, run_id, context))

    def execute(self, context: Any) -> Any:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from cerebro_ops.core.errors import FieldError, StudyFailed
        from cerebro_ops.core.spec import load_spec

        run_id = _run_id(context)
        try:
            result = self.run_step(load_spec(self.spec_path), run_id, context)
        except (FieldError, StudyFailed) as exc:
            # Deterministic failures: retrying cannot help, so fail the task without retries.
            raise AirflowFailException(str(exc)) from exc
        self.log.info("%s result: %s", self.task_id, _describe(result))
        if isinstance(result, dict) and result.get("skipped"):
            raise AirflowSkipException(f"nothing to do: {result['skipped']}")
        return _summary(result) if isinstance(result, dict) else None


class SparkStepOperator(CerebroStepOperator):
    """A step that runs Spark jobs: resolves the master from the Airflow connection; ``on_kill`` cancels them."""

    def __init__(self, *, spec_path: str, conn_id: str | None = "spark_default", **kwargs: Any) -> None:
        super().__init__(spec_path=spec_path, **kwargs)
        self.conn_id = conn_id
        self._job_tag: str | None = None  # this task's Spark job tag, made when it joins Spark

    def resolve_master(self, spec: Any) -> str:
        """The Spark master for this task: the Airflow connection if present, else the spec's."""
        if not self.conn_id:
            return spec.runtime.spark_master
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(self.conn_id)
        except AirflowNotFoundException:
            return spec.runtime.spark_master
        if conn.conn_type == "spark_connect":
            from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook

            return SparkConnectHook(self.conn_id).get_connection_url()
        if conn.conn_type == "spark" and conn.host:
            from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook

            # The provider's own SparkSubmitOperator reads the master from this resolved dict, too.
            return SparkSubmitHook(conn_id=self.conn_id)._connection["master"]
        self.log.warning("connection %r has conn_type %r and no usable host; using the spec's master",
                         self.conn_id, conn.conn_type)
        return spec.runtime.spark_master

    def spark(self, spec: Any):
        """This task's Spark session (reused if this process has one on the same master)."""
        from cerebro_ops.spark.job_tags import new_task_tag, tag_jobs
        from cerebro_ops.spark.session import study_spark

        master = self.resolve_master(spec)
        self.log.info("Spark master: %s", master.split(";", 1)[0])  # never log sc:// tokens
        spark = study_spark(spec, master)
        self._job_tag = self._job_tag or new_task_tag()
        try:
            tag_jobs(spark, self._job_tag)  # on_kill cancels this tag, not the shared session's other jobs
        except Exception:  # noqa: BLE001 - an untagged task still runs; on_kill then cancels nothing of others
            self.log.warning("could not tag this task's Spark jobs; on_kill will not cancel them", exc_info=True)
        return spark

    def on_kill(self) -> None:
        """Cancel this task's running Spark jobs (its tag and its epoch job), never another run's jobs in a
        shared Spark Connect session; never raises."""
        if self._job_tag is None or "pyspark" not in sys.modules:  # this task never joined Spark
            return
        try:
            from cerebro_ops.spark.job_tags import cancel_task_jobs

            sent = cancel_task_jobs(self._job_tag)
            self.log.info("cancelled this task's Spark jobs (tag %s, %d cancel(s))", self._job_tag, sent)
        except Exception:  # noqa: BLE001 - on_kill must not raise
            self.log.exception("could not cancel Spark jobs")


class CerebroPrepareOperator(SparkStepOperator):
    """Checks the trigger's Params first (an unknown or bad one fails before Spark starts), then prepares."""

    kind = "prepare"

    def step_kwargs(self, spec: Any, run_id: str, context: Any) -> dict:
        from cerebro_ops.core.params import validate_overrides

        overrides = validate_overrides(spec, dict(context.get("params") or {}))
        tags = {"airflow.dag_id": _dag_id(context, self), "airflow.run_id": run_id}
        self.log.info("prepare %s run %s with overrides %s", spec.name, run_id, overrides)
        return {"spark": self.spark(spec), "overrides": overrides, "tags": tags}

    def run_step(self, spec: Any, run_id: str, context: Any) -> Any:
        super().run_step(spec, run_id, context)
        return None  # the run state is large: it stays out of XCom


class CerebroPartitionOperator(SparkStepOperator):
    """The workers' partitions. prepare writes them, so this joins Spark only for a run prepared by an earlier
    version (which left its encoded rows unsplit)."""

    kind = "partition"

    def step_kwargs(self, spec: Any, run_id: str, context: Any) -> dict:
        from cerebro_ops import study

        return {"spark": self.spark(spec) if study.needs_partitioning(spec, run_id) else None}

    def run_step(self, spec: Any, run_id: str, context: Any) -> Any:
        super().run_step(spec, run_id, context)
        return None


class CerebroEpochOperator(SparkStepOperator):
    """One epoch of one batch (batch 0 unless TPE). Spark starts only if the epoch trains: a skipped one
    (beyond this run's epochs or batches, or already done) costs no Spark application."""

    kind = "epoch"

    def __init__(self, *, spec_path: str, epoch: int, batch: int = 0, **kwargs: Any) -> None:
        super().__init__(spec_path=spec_path, **kwargs)
        self.epoch = epoch
        self.batch = batch

    def step_kwargs(self, spec: Any, run_id: str, context: Any) -> dict:
        from cerebro_ops import study

        trains = study.epoch_needs_training(spec, run_id, self.epoch, self.batch)
        if trains:  # the epoch's tracking needs MLflow: import it while this task joins Spark
            from cerebro_ops.mlflow.tracking import preload_mlflow
            preload_mlflow(spec.runtime.tracking_uri)
        return {"spark": self.spark(spec) if trains else None}


class CerebroNextBatchOperator(CerebroStepOperator):
    """TPE: tells the results of batch ``batch`` and asks batch ``batch + 1`` (no Spark)."""

    kind = "next_batch"

    def __init__(self, *, spec_path: str, batch: int, **kwargs: Any) -> None:
        super().__init__(spec_path=spec_path, **kwargs)
        self.batch = batch


class CerebroSelectOperator(CerebroStepOperator):
    kind = "select"


class CerebroRegisterOperator(CerebroStepOperator):
    kind = "register"


OPERATORS: dict[str, type[CerebroStepOperator]] = {op.kind: op for op in (
    CerebroPrepareOperator, CerebroPartitionOperator, CerebroEpochOperator, CerebroNextBatchOperator,
    CerebroSelectOperator, CerebroRegisterOperator)}


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
