"""YAML study specs → Airflow DAGs (Airflow 3, ``airflow.sdk``).

One DAG per spec, ``cerebro_<name>``, with the steps of :func:`cerebro_ops.core.plan.build_plan`:
prepare → partition → epoch_1..N → select → register; for TPE, each batch is a TaskGroup ``batch_<b>`` holding its
``epoch_<e>`` tasks and (all but the last) a ``next_batch`` task. Trigger Params from
:func:`cerebro_ops.core.params.trigger_params`. A run triggered with fewer epochs or configs than the DAG's maximum
skips the extra steps; the steps after them run anyway (trigger rule ``none_failed``).

* A broken spec never hides the others: it becomes a placeholder DAG ``cerebro_<stem>_invalid`` (tag
  ``invalid-spec``, description = the error, one task that fails with it) and the error is logged.
* ``schedule: on_data_change`` schedules the study on an Asset for its data source
  (name ``cerebro_<name>_source``). A companion DAG ``cerebro_<name>_data_landed`` (manual trigger) has that
  Asset as its outlet: trigger it when new data lands to emit the event and start the study. The same is done
  by ``airflow assets materialize --name cerebro_<name>_source`` (runs the materializing DAG), or, without a
  task, by the REST API ``POST /api/v2/assets/events`` with ``{"asset_id": <id>}``.

Parse-time cost: YAML + Airflow only. Spark, TensorFlow and ``cerebro_ops.study`` are imported by the
operators at execute time.
"""
from __future__ import annotations

import logging
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param, TaskGroup, TriggerRule

from cerebro_ops.core.params import trigger_params
from cerebro_ops.core.plan import Step, build_plan
from cerebro_ops.core.search import searcher_for
from cerebro_ops.core.spec import StudySpec, load_spec
from cerebro_ops.airflow.operators import OPERATORS, DataLandedOperator, InvalidSpecOperator

log = logging.getLogger(__name__)

SPEC_SUFFIXES = (".yaml", ".yml")
START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
DEFAULT_ARGS: dict[str, Any] = {"owner": "cerebro-ops", "retries": 2, "retry_delay": timedelta(seconds=10)}
BASE_TAG = "cerebro-ops"
INVALID_TAG = "invalid-spec"
SPARK_KINDS = ("prepare", "partition", "epoch")
# Steps that run even when the step before them was skipped (an epoch or batch beyond this run's): each
# decides from the run state whether it has work, so select always ranks what was trained.
RUN_AFTER_SKIPPED = ("epoch", "next_batch", "select")


def source_asset(spec: StudySpec) -> Asset:
    """The Asset standing for the spec's data source (stable URI: absolute paths become file:// URIs)."""
    src = spec.data.source.strip()
    uri = src if "://" in src else Path(os.path.abspath(os.path.expanduser(src))).as_uri()
    return Asset(uri=uri, name=f"cerebro_{spec.name}_source")


def _schedule(spec: StudySpec):
    if spec.schedule is None:
        return None
    if spec.schedule == "on_data_change":
        return [source_asset(spec)]
    return spec.schedule  # an @preset or a 5-field cron expression (validated by the spec)


def _params(spec: StudySpec) -> dict[str, Param]:
    out = {}
    for key, schema in trigger_params(spec).items():
        schema = dict(schema)
        default = schema.pop("default")
        description = schema.pop("description")
        out[key] = Param(default, description=description, **schema)
    return out


def study_dag(spec: StudySpec, spec_path: str, conn_id: str | None = "spark_default") -> DAG:
    """The DAG of an already loaded spec; tasks re-load ``spec_path`` at execute time."""
    dag = DAG(
        dag_id=spec.dag_id,
        description=(spec.description or f"cerebro-ops study {spec.name}")[:1000],
        doc_md=_doc_md(spec, spec_path),
        schedule=_schedule(spec),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        max_active_tasks=1,
        default_args=dict(DEFAULT_ARGS),
        params=_params(spec),
        tags=[BASE_TAG, spec.name],
    )
    tasks: dict[str, Any] = {}
    groups: dict[str, TaskGroup] = {}
    for step in build_plan(spec):
        if step.group and step.group not in groups:
            groups[step.group] = TaskGroup(step.group, tooltip=f"TPE batch {step.batch + 1}", dag=dag)
        task = _task(step, spec_path, conn_id, dag, groups.get(step.group))
        for up in step.upstream:
            tasks[up] >> task
        tasks[step.task_id] = task
    return dag


def _task(step: Step, spec_path: str, conn_id: str | None, dag: DAG, group: TaskGroup | None):
    """The operator of one plan step; its full task id (``group.name``) is the step's task id."""
    kwargs: dict[str, Any] = {"task_id": step.name, "spec_path": spec_path, "dag": dag, "task_group": group}
    if step.kind == "epoch":
        kwargs.update(epoch=step.epoch, batch=step.batch)
    if step.kind == "next_batch":
        kwargs["batch"] = step.batch
    if step.kind in SPARK_KINDS:
        kwargs["conn_id"] = conn_id
    if step.kind in RUN_AFTER_SKIPPED:
        kwargs["trigger_rule"] = TriggerRule.NONE_FAILED
    task = OPERATORS[step.kind](**kwargs)
    assert task.task_id == step.task_id, (task.task_id, step.task_id)
    return task


def build_data_landed_dag(spec: StudySpec) -> DAG:
    """Manual-trigger DAG whose only task emits the spec's source Asset event."""
    # Not airflow.sdk's @asset, which would say the same thing: it builds its DAG inside the decorator and keeps
    # no reference to it (only the DAG-file parser's auto-registration finds it), so a factory that returns its
    # DAGs and turns a broken spec into a placeholder cannot hold it; a one-task DAG with the Asset as outlet
    # is what @asset generates.
    dag = DAG(
        dag_id=f"{spec.dag_id}_data_landed",
        description=f"Trigger when new data lands at {spec.data.source}: starts {spec.dag_id}",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        tags=[BASE_TAG, spec.name, "data-landed"],
    )
    DataLandedOperator(task_id="emit_data_landed", outlets=[source_asset(spec)], dag=dag)
    return dag


def invalid_dag_id(spec_path: str | os.PathLike) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.\-]", "_", Path(spec_path).stem)
    return f"cerebro_{stem}_invalid"


def build_invalid_dag(spec_path: str | os.PathLike, message: str) -> DAG:
    """Placeholder that shows a broken spec in the UI (description + failing task) without hiding others."""
    dag = DAG(
        dag_id=invalid_dag_id(spec_path),
        description=message[:1000],
        doc_md=f"**Invalid study spec** `{Path(spec_path).name}`\n\n```\n{message}\n```",
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        tags=[BASE_TAG, INVALID_TAG],
    )
    InvalidSpecOperator(task_id="invalid_spec", message=message, dag=dag)
    return dag


def spec_files(specs_dir: str | os.PathLike) -> list[Path]:
    d = Path(specs_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_file() and p.suffix in SPEC_SUFFIXES)


def build_dags(specs_dir: str | os.PathLike, conn_id: str | None = "spark_default") -> dict[str, DAG]:
    """dag_id → DAG for every spec file in ``specs_dir`` (sorted); broken specs become placeholders."""
    dags: dict[str, DAG] = {}
    origin: dict[str, str] = {}

    def add(dag: DAG, path: Path) -> None:
        if dag.dag_id in dags:
            raise ValueError(f"DAG id {dag.dag_id!r} is already defined by {origin[dag.dag_id]}; "
                             "give each spec a unique name")
        dags[dag.dag_id] = dag
        origin[dag.dag_id] = path.name

    for path in spec_files(specs_dir):
        try:
            spec = load_spec(path)
            new = [study_dag(spec, str(path.resolve()), conn_id=conn_id)]
            if spec.schedule == "on_data_change":
                new.append(build_data_landed_dag(spec))
            for dag_id in (d.dag_id for d in new):
                if dag_id in dags:
                    raise ValueError(f"DAG id {dag_id!r} is already defined by {origin[dag_id]}; "
                                     "give each spec a unique name")
            for d in new:
                add(d, path)
        except Exception as exc:  # noqa: BLE001 - one broken spec must not hide the others
            message = f"{path.name}: {exc}"
            log.error("cerebro-ops: invalid study spec %s", message)
            placeholder = build_invalid_dag(path, message)
            if placeholder.dag_id not in dags:
                add(placeholder, path)
    return dags


def _doc_md(spec: StudySpec, spec_path: str) -> str:
    searcher = searcher_for(spec)
    batches = f" in {searcher.num_batches} batches" if searcher.is_adaptive else ""
    return (f"### cerebro-ops study `{spec.name}`\n\n{spec.description}\n\n"
            f"* spec: `{spec_path}`\n* data: `{spec.data.source}` (label `{spec.data.label}`, {spec.data.task})\n"
            f"* search: {spec.search.method}, {spec.search.num_configs} configs{batches}; {spec.train.epochs} epochs "
            f"on {spec.train.workers} workers; metric `{spec.train.metric}` ({spec.train.direction})\n"
            f"* schedule: `{spec.schedule}`\n")
