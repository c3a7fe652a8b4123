"""A study run, step by step: prepare → partition → (epoch 1..N of batch b, next batch)... → select → register.

The CLI and the Airflow operators call these same functions. Every step reads and writes the run's state
(:class:`~cerebro_ops.core.run_state.RunState`, saved by its :class:`~cerebro_ops.core.run_state.RunRepository`
atomically after the step's work is safe), so any step can be re-run: a finished step is a no-op, an
interrupted epoch resumes from its hop records.

Prepare snapshots the effective spec (the spec with the trigger's overrides) in the run state; every later
step works from that snapshot and uses its `spec` argument only to find the run (store and study name), so
editing the YAML mid-run changes nothing in a run already prepared.

A TPE study trains its configs in batches (core/search); grid and random studies are one batch 0. A batch's epochs
count from 1; ``next_batch`` tells Optuna a finished batch's results and adds the next batch's configs.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import uuid
from dataclasses import dataclass, field
from typing import Callable

from cerebro_ops.builder_check import BuilderCheck
from cerebro_ops.core.errors import DataError, StudyFailed
from cerebro_ops.core.leaderboard import best_row, best_value, leaderboard_rows
from cerebro_ops.core.prepare_summary import summary_lines
from cerebro_ops.core.row_hashes import row_hashes
from cerebro_ops.mlflow.child_runs import MLFLOW_END_STATUS, ChildRuns, EarlyEpochLogs, TrackingQueue, epoch_metrics
from cerebro_ops.mlflow.tracking import (TRAIN_ROWS_COLUMNS_TAG, TRAIN_ROWS_SHA_TAG, index_installed_packages,
                                         preload_mlflow)
from cerebro_ops.core.run_state import (EpochEntry, ModelStatus, ReplayOf, RunRepository, RunState,
                                        effective_spec)
from cerebro_ops.core.search import searcher_for
from cerebro_ops.core.search.batches import batch_record, next_configs, start_configs
from cerebro_ops.data.source import check_source
from cerebro_ops.core.source_policy import no_values_in_errors
from cerebro_ops.core.spec import StudySpec, load_spec

log = logging.getLogger("cerebro_ops.study")


# --------------------------------------------------------------------------------------------- helpers

def new_run_id() -> str:
    return f"cli-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def repository(spec: StudySpec, run_id: str) -> RunRepository:
    """Where run `run_id` of the spec's study lives: the spec's store and name, nothing else of it."""
    return RunRepository(spec.runtime.store, spec.name, run_id)


run_spec = effective_spec  # the spec a run was prepared with (run_state.py derives it, for every reader)


def open_run(spec: StudySpec, run_id: str) -> tuple[RunRepository, RunState, StudySpec]:
    """The run's repository, its state, and the spec it runs with."""
    repo = repository(spec, run_id)
    state = repo.load()
    snapshot = run_spec(spec, state)
    if state.tpe is None and state.prepared:
        # prepared before batches were part of the state: its models so far are the first batch
        state.tpe = batch_record(searcher_for(snapshot), list(state.models), state.replay_of)
    return repo, state, snapshot


def load_run(spec: StudySpec, run_id: str) -> RunState:
    return open_run(spec, run_id)[1]


def load_state(spec: StudySpec, run_id: str) -> dict:
    """The run's state with state.json's keys (for reports and tests; a copy, changing it changes nothing)."""
    return load_run(spec, run_id).to_json()


# The two outside systems of the steps, each opened here only: tests replace these two functions.
def open_tracker(spec: StudySpec):
    from cerebro_ops.mlflow.tracking import Tracker
    return Tracker(spec.runtime.tracking_uri, spec.runtime.experiment)


def spark_session(spec: StudySpec, spark):
    if spark is not None:
        return spark
    from cerebro_ops.spark.session import study_spark
    return study_spark(spec, spec.runtime.spark_master)


def provisional_shape(spec: StudySpec) -> tuple[int, ...]:
    """The flat feature shape as far as the spec tells (no TensorFlow import): for the memory plan before prepare."""
    d = spec.data
    if len(d.feature_columns) == 1 and d.arrays:
        return tuple(d.arrays[0].shape)
    return (len(d.numeric) + 2 * len(d.categorical) + sum(math.prod(a.shape) for a in d.arrays),)


def provisional_info(spec: StudySpec):
    """Data shape as far as the spec tells, to check the builder before any data work."""
    from cerebro_ops.keras.trainer import DataInfo
    classes = {"binary": 2, "multiclass": 3, "regression": 1}[spec.data.task]
    return DataInfo(provisional_shape(spec), spec.data.task, classes)


# --------------------------------------------------------------------------------------------- steps

def check_spec_and_source(spec_path: str, overrides: dict | None = None) -> StudySpec:
    """The checks that need neither Spark nor TensorFlow: the spec, the overrides (validated and applied) and
    the data source."""
    from cerebro_ops.core.params import validate_overrides

    overrides = overrides or {}
    spec = load_spec(spec_path)
    spec = spec.with_overrides(**validate_overrides(spec, overrides))
    with no_values_in_errors("source" in overrides):
        check_source(spec)
    return spec


def check_memory_plan(spec: StudySpec) -> None:
    """The worker memory budget holds one batch (FieldError(runtime.worker_memory_mb) otherwise); no TensorFlow."""
    from cerebro_ops.data.estimate import check_memory

    check_memory(spec, input_shape=provisional_shape(spec))


def check_model_and_memory(spec: StudySpec, check_model: bool = True) -> None:
    """The memory plan, and (importing TensorFlow, seconds in a new process) the model builder builds the first
    config."""
    check_memory_plan(spec)
    if check_model:
        check_model_builder(spec, first_params(spec))


def start_builder_check(spec: StudySpec, params: dict | None = None) -> BuilderCheck:
    """The builder check of a run of `spec` (its first config's `params`, by default the search's first), on a
    thread from now on: what prepare waits for (its builder_check)."""
    params = first_params(spec) if params is None else params
    return BuilderCheck(lambda: check_model_builder(spec, params))


def first_params(spec: StudySpec) -> dict:
    return searcher_for(spec).first_batch()[0].params


def validate(spec_path: str, overrides: dict | None = None, check_model: bool = True) -> StudySpec:
    """Everything that can be checked before work starts: spec, overrides, data source, memory, builder."""
    spec = check_spec_and_source(spec_path, overrides)
    check_model_and_memory(spec, check_model)
    return spec


def check_model_builder(spec: StudySpec, params: dict) -> None:
    """Build the model of one config on the driver: a broken builder fails here, before any run exists."""
    from cerebro_ops.keras.trainer import check_builder

    check_builder(spec.model_builder, params, provisional_info(spec), spec.train.metric)


# shape: spec and run_id name the run; overrides/tags/replay_of are the trigger's; spark and builder_check are
# what the CLI injects (its session, and the builder check it started before Spark was up); warm_workers is
# run()'s, whose epochs follow in this process.
def prepare(spec: StudySpec, run_id: str, spark=None, overrides: dict | None = None,
            tags: dict | None = None, replay_of: RunState | None = None,
            builder_check: BuilderCheck | None = None, warm_workers: bool = False) -> RunState:
    """Sample configs, open the MLflow runs, and prepare the data (clean, encode, split, shuffle) into the
    workers' partitions: the run is then partitioned too, and the partition step has nothing to do.

    The effective spec (`spec` with the validated `overrides`) is snapshotted in the run state: every later
    step uses it. `replay_of`: the state of an earlier run whose recorded configs (and TPE batches) are used
    instead of sampling (``cerebro-ops replay``). The model builder is checked on a thread (builder_check.py),
    while a Spark Connect server prepares the data; a broken builder is still reported before any MLflow run
    exists, and leaves no data behind. `warm_workers`: the session's Python workers start (TensorFlow imported)
    while the data is prepared, for epochs that run on the same session."""
    from cerebro_ops.core.params import validate_overrides

    overrides = validate_overrides(spec, overrides or {})
    repo = repository(spec, run_id)
    if repo.exists() and repo.load().prepared:
        if builder_check is not None:
            _raise_builder_error(builder_check)
        log.info("run %s already prepared; nothing to do", run_id)
        return load_run(spec, run_id)
    snapshot = spec.with_overrides(**overrides)
    with no_values_in_errors("source" in overrides):
        check_source(snapshot)
    searcher = searcher_for(snapshot)
    configs = start_configs(searcher, replay_of)
    check = builder_check or start_builder_check(snapshot, configs[0].params)
    state = RunState(run_id=run_id, study=spec.name, created=dt.datetime.now(dt.timezone.utc).isoformat(),
                     overrides=overrides, spec=snapshot.to_dict(), epochs=snapshot.train.epochs, seed=snapshot.seed,
                     tags=tags or {})
    for c in configs:
        state.add_model(c.model_id, c.params)
    if replay_of:
        state.replay_of = ReplayOf(replay_of.run_id, replay_of.configs,
                                   replay_of.tpe.batches if replay_of.tpe else None)
    state.tpe = batch_record(searcher, [c.model_id for c in configs], state.replay_of)
    preloading = preload_mlflow(snapshot.runtime.tracking_uri)  # imports only, overlapping Spark's work below
    session = spark_session(snapshot, spark)
    if warm_workers:
        from cerebro_ops.spark.session import warm_up_workers
        warm_up_workers(session)
    tracker = open_tracker(snapshot)
    state.meta = _prepare_data(session, snapshot, repo, check, "source" in overrides, tracker)
    preloading.join()
    _start_tracking(tracker, snapshot, state, tags or {})
    state.prepared = True
    state.partitioned = state.meta.get("workers") == snapshot.train.workers
    repo.save(state)
    log.info("prepared run %s: %d configs, %s rows", run_id, len(configs), state.meta.get("rows"))
    if state.partitioned:
        _log_memory_plan(snapshot, state.meta)
    for line in summary_lines(state.meta.get("summary") or {}):
        log.info("data: %s", line)
    return state


def _prepare_data(session, snapshot: StudySpec, repo: RunRepository, check: BuilderCheck, from_trigger: bool,
                  tracker) -> dict:
    """prep.prepare, on a Spark Connect session while the builder check runs: the data is checked and written
    before any MLflow run or run state exists. A bad builder or bad data leaves nothing behind (this run has no
    state yet); when both are bad, the builder's error is the one raised, as when it was checked first. Once
    the data passed its checks, `tracker` opens MLflow's store beside the writes (_open_tracking_when_built)."""
    from cerebro_ops.spark import prepare as prep
    from cerebro_ops.spark.job_tags import is_connect

    if not is_connect(session):
        # Classic Spark: this thread drives prepare with thousands of py4j calls, and beside TensorFlow's import
        # and the model's first trace each waits for the GIL (a cold local study ran about 1 s longer). The
        # check comes first, as it overlapped the JVM's start; on Spark Connect the work runs on the server.
        _raise_builder_error(check)
    try:
        with no_values_in_errors(from_trigger), check.interrupting(session, f"cerebro-prepare-{uuid.uuid4().hex}"):
            meta = prep.prepare(session, snapshot, repo.store.sub("data"),
                                on_checked=lambda: _open_tracking_when_built(check, tracker, is_connect(session)))
    except Exception as exc:
        builder_error = check.error()
        if builder_error is not None or isinstance(exc, DataError):
            repo.delete()
        if builder_error is not None and builder_error is not exc:
            raise builder_error from None
        raise
    builder_error = check.error()
    if builder_error is not None:
        repo.delete()
        raise builder_error
    return meta


def _open_tracking_when_built(check: BuilderCheck, tracker, driver_idle: bool = False) -> None:
    """Open MLflow's store (for a new database, its schema: 0.6 s) on a thread while prepare writes the data,
    once the builder check passed too: for a bad builder no MLflow database may be created. With `driver_idle`
    (Spark Connect: the server runs prepare), MLflow's index of the installed packages is built too, which the
    register step needs to log a model; beside a classic session's py4j calls it would hold the GIL they wait
    for (a cold 20k-row prepare took 0.2-0.3 s longer)."""
    def run() -> None:
        if check.error() is None:
            opening = tracker.warm_up()
            if driver_idle:
                if opening is not None:
                    opening.join()
                index_installed_packages()

    threading.Thread(target=run, name="mlflow-open", daemon=True).start()


def _start_tracking(tracker, snapshot: StudySpec, state: RunState, tags: dict) -> None:
    """The parent MLflow run with the prepare summary, and a child run per config (their ids go into `state`)."""
    state.mlflow_parent = tracker.start_study(snapshot, state.run_id, tags)
    tracker.log_prepare_summary(state.mlflow_parent, state.meta.get("summary"))
    children = ChildRuns(tracker, state.mlflow_parent)
    for rec in state.models.values():
        children.start(rec)


def _partition_data(session, snapshot: StudySpec, repo: RunRepository, meta: dict) -> dict:
    from cerebro_ops.spark import prepare as prep

    _log_memory_plan(snapshot, meta)
    return prep.partition(session, snapshot, repo.store.sub("data"), snapshot.train.workers)


def _log_memory_plan(snapshot: StudySpec, meta: dict) -> None:
    from cerebro_ops.data.estimate import check_prepared

    for line in check_prepared(snapshot, meta):
        log.info(line)  # cached or streamed, per worker, from the prepared row counts


def _raise_builder_error(check: BuilderCheck) -> None:
    error = check.error()
    if error is not None:
        raise error


def needs_partitioning(spec: StudySpec, run_id: str) -> bool:
    """Whether partition() has work (and so needs Spark): only for a run prepared by an earlier version, whose
    prepare did not write the workers' partitions."""
    return not load_run(spec, run_id).partitioned


def partition(spec: StudySpec, run_id: str, spark=None) -> RunState:
    repo, state, snapshot = open_run(spec, run_id)
    if state.partitioned:
        return state
    state.meta = _partition_data(spark_session(snapshot, spark), snapshot, repo, state.meta)
    state.partitioned = True
    repo.save(state)
    return state


def _epoch_skip(state: RunState, epoch: int, batch: int) -> str | None:
    """Why epoch `epoch` of batch `batch` trains nothing (None: it trains); raises if it cannot start yet."""
    if batch >= state.batch_count:
        return "beyond run batches"
    if epoch > state.epochs:
        return "beyond run epochs"
    if batch < state.current_batch or (batch == state.current_batch and epoch <= state.epochs_done):
        return "already done"
    if batch > state.current_batch:
        raise DataError("batch", f"batch {batch} cannot start: batch {state.current_batch} is the current one",
                        f"run next_batch for batch {state.current_batch} first (run the steps in order)")
    if epoch != state.epochs_done + 1:
        raise DataError("epoch", f"epoch {epoch} cannot start: epoch {state.epochs_done + 1} is not done",
                        "run the epochs in order")
    return None


def epoch_needs_training(spec: StudySpec, run_id: str, epoch: int, batch: int = 0) -> bool:
    """Whether run_epoch(epoch, batch) would train (and so needs Spark); raises as run_epoch would."""
    return _epoch_skip(load_run(spec, run_id), epoch, batch) is None


@dataclass
class KeptAcrossSteps:
    """What a run in one process (the CLI's `run`) keeps from one step to the next: the thread that logs to
    MLflow while the next epoch trains, and the workers, which wait on the open hop server between epochs."""
    tracking: TrackingQueue = field(default_factory=TrackingQueue)
    workers: object | None = None  # mop.epoch.WorkerSession(keep_open=True), made by the first epoch

    def close(self) -> None:
        try:
            if self.workers is not None:
                self.workers.close()
        finally:
            self.tracking.close()


# shape: (spec, run_id, epoch, batch) name the step; spark/launcher/on_record/kept are optional
# injection points for the CLI and the tests.
def run_epoch(spec: StudySpec, run_id: str, epoch: int, batch: int = 0, spark=None, launcher=None,
              on_record: Callable[[dict], None] | None = None, kept: KeptAcrossSteps | None = None) -> dict:
    """Train batch `batch`'s live models one epoch with MOP (epochs of a batch count from 1).

    Idempotent: a finished epoch is not trained again; an epoch or batch beyond the run's (a run triggered
    with fewer epochs or configs than the DAG has steps for) is a no-op. Each config's epoch is logged to
    MLflow as soon as its result is final (EarlyEpochLogs), on the CLI's queue or on this step's own, which
    is drained before the run state is saved: what the state says was trained is in MLflow."""
    repo, state, snapshot = open_run(spec, run_id)
    skip = _epoch_skip(state, epoch, batch)
    if skip is not None:
        log.info("epoch %d of batch %d: %s; nothing to do", epoch, batch, skip)
        return {"epoch": epoch, "batch": batch, "skipped": skip}
    tracker = open_tracker(snapshot)
    background = kept.tracking if kept is not None else TrackingQueue()
    try:
        children = ChildRuns(tracker, state.mlflow_parent, background=background)
        logs = EarlyEpochLogs(children, state, snapshot, repo.store, epoch)
        models, wall = _train_epoch(snapshot, state, repo, epoch, logs, spark=spark, launcher=launcher,
                                    on_record=on_record, kept=kept)
        pruned = _record_epoch(snapshot, state, repo, epoch, models, logs)
        if kept is None:
            background.drain()  # this step's MLflow calls, before the state says the epoch is done
        state.epochs_done = epoch
        repo.save(state)
    finally:
        if kept is None:
            background.close()
    failed = state.with_status(ModelStatus.FAILED)
    if state.models and len(failed) == len(state.models):
        raise StudyFailed(f"every config of run {run_id} failed: " + "; ".join(
            f"{m}: {state.models[m].reason}" for m in failed))
    return {"epoch": epoch, "batch": batch, "wall_s": round(wall, 3), "live_models": len(state.live_models()),
            "pruned": sorted(pruned), "failed": failed}


# shape: the epoch's run (snapshot, state, repo, epoch) and its EarlyEpochLogs, then run_epoch's injection points.
def _train_epoch(snapshot: StudySpec, state: RunState, repo: RunRepository, epoch: int, logs: EarlyEpochLogs, *,
                 spark, launcher, on_record: Callable[[dict], None] | None,
                 kept: KeptAcrossSteps | None) -> tuple:
    """(model -> ModelResult, wall seconds) of the epoch's MOP pass over the live models ({} when none)."""
    from cerebro_ops.mop.epoch import EpochContext, EpochDriver, FaultHooks, WorkerSession
    from cerebro_ops.mop.hop_server import HopTimeouts

    live = {m: state.models[m].ckpt for m in state.live_models()}
    if not live:
        return {}, 0.0
    logs.children.tracker.warm_up()  # a new task process opens MLflow while the epoch trains, not after it
    if launcher is None:
        from cerebro_ops.spark.epoch_job import spark_launcher
        launcher = spark_launcher(spark_session(snapshot, spark), snapshot.train.workers)
    train, store = snapshot.train, repo.store
    replayed = repository(snapshot, state.replay_of.run_id).store if state.replay_of else None
    ctx = EpochContext(store, epoch, state.configs, live, snapshot.model_builder, snapshot.seed, train.workers,
                       store.url("data"), state.meta, train.deterministic, snapshot.runtime.max_hop_retries,
                       hop_order=train.hop_order, replay_store=replayed, validation="partitioned",
                       memory_mb=snapshot.runtime.worker_memory_mb, local_dir=snapshot.runtime.local_dir)
    timeouts = HopTimeouts(connect_s=snapshot.runtime.connect_timeout_s, lost_s=snapshot.runtime.worker_lost_s)
    if kept is not None and kept.workers is None:
        kept.workers = WorkerSession(launcher, timeouts=timeouts, keep_open=True)
    result = EpochDriver(ctx, launcher, hooks=FaultHooks.from_env(), on_record=on_record, timeouts=timeouts,
                         session=kept.workers if kept is not None else None, on_model_done=logs.model_done).run()
    return result.models, result.wall_s


# shape: the epoch's run (snapshot, state, repo, epoch), its results, and what was logged while it trained.
def _record_epoch(snapshot: StudySpec, state: RunState, repo: RunRepository, epoch: int, models: dict,
                  logs: EarlyEpochLogs) -> set[str]:
    """The epoch's results into the run state and MLflow (failed configs end, the others log their epoch
    unless it was logged early), then the pruning rule; returns the configs it pruned."""
    children = logs.children
    for m, res in models.items():
        rec = state.models[m]
        if res.status == ModelStatus.FAILED:
            rec.status, rec.reason = ModelStatus.FAILED, res.reason
            children.end(rec, {"cerebro.failure_reason": res.reason[:500], "failed_at_epoch": str(epoch)})
            continue
        metrics = epoch_metrics(res)
        rec.ckpt = res.ckpt
        rec.history.append(EpochEntry(epoch, metrics, res.ckpt))
        if not logs.logged(m, metrics, res.ckpt):
            children.epoch_done(rec, snapshot, repo.store, epoch)
    pruned = _prune(snapshot, state, epoch)
    for m in pruned:
        rec = state.models[m]
        rec.status, rec.reason = ModelStatus.PRUNED, f"pruned by {snapshot.pruning.method} after epoch {epoch}"
        children.end(rec, {"pruned_at_epoch": str(epoch)})
    return pruned


def _prune(spec: StudySpec, state: RunState, epoch: int) -> set[str]:
    """Models to stop after this epoch; the last epoch prunes nothing (they are all finished)."""
    from cerebro_ops.core.pruning import make_pruner, to_minimise

    if epoch >= state.epochs:
        return set()
    pruner = make_pruner(spec.pruning, state.epochs, sorted(state.models))
    hist = {m: to_minimise([h.value(spec.train.metric) for h in state.models[m].history], spec.train.direction)
            for m in state.live_models()}
    return pruner.prune(hist, epoch)


def next_batch(spec: StudySpec, run_id: str, batch: int) -> dict:
    """Tell Optuna the results of batch `batch` and ask batch `batch + 1`: its models (and their MLflow child
    runs) join the run with a fresh epoch counter. Idempotent; a no-op past the run's last batch."""
    repo, state, snapshot = open_run(spec, run_id)
    if batch + 1 >= state.batch_count:
        return {"batch": batch, "skipped": "no later batch"}
    if batch < state.current_batch:
        return {"batch": batch, "skipped": "already done"}
    if batch > state.current_batch or state.epochs_done < state.epochs:
        done = state.epochs_done if batch == state.current_batch else 0
        raise DataError("batch", f"batch {batch} is not trained ({done} of {state.epochs} epochs done)",
                        "run its epochs first (run the steps in order)")
    configs = next_configs(searcher_for(snapshot), state, batch + 1)
    children = ChildRuns(open_tracker(snapshot), state.mlflow_parent)
    children.finish_live(state)
    for c in configs:
        children.start(state.add_model(c.model_id, c.params))
    state.tpe.batches.append([c.model_id for c in configs])
    state.epochs_done = 0
    repo.save(state)
    ids = [c.model_id for c in configs]
    log.info("tpe batch %d/%d: %s", batch + 2, state.batch_count, ", ".join(ids))
    return {"batch": batch, "next_batch": batch + 1, "models": ids}


def hop_records(spec: StudySpec, run_id: str) -> list[dict]:
    """Every hop record of the run so far, oldest first."""
    from cerebro_ops.mop.records import RecordLog
    return RecordLog(repository(spec, run_id).store).read_all()


def select(spec: StudySpec, run_id: str) -> list[dict]:
    """Rank configs by the spec's metric and direction; write the leaderboard and hop log."""
    import yaml

    repo, state, snapshot = open_run(spec, run_id)
    if state.epochs_done < state.epochs:
        raise DataError("epochs", f"only {state.epochs_done} of {state.epochs} epochs are done",
                        "finish the epochs before selecting")
    if state.current_batch + 1 < state.batch_count:
        raise DataError("search.num_configs", f"only {state.current_batch + 1} of {state.batch_count} TPE batches "
                        "are trained", "run the remaining next_batch and epoch steps before selecting")
    from cerebro_ops.mop.hop_table import hop_table, write_run_files

    tracker = open_tracker(snapshot)
    ChildRuns(tracker, state.mlflow_parent).finish_live(state)
    rows = leaderboard_rows(state, snapshot.train.metric, snapshot.train.direction)
    store = repo.store
    records = write_run_files(store, rows)
    tracker.log_study(state.mlflow_parent, yaml.safe_dump(snapshot.to_dict(), sort_keys=False), rows, records,
                      snapshot.train.metric)
    tracker.log_hop_table(state.mlflow_parent, hop_table(records, snapshot.seed, store,
                                                         {m: r.mlflow_run for m, r in state.models.items()}))
    best = best_row(rows, snapshot.train.metric)
    state.selected = best["model_id"] if best else None
    repo.save(state)
    return rows


def register(spec: StudySpec, run_id: str) -> dict:
    """Log the best model as a raw-rows MLflow pyfunc (serving.py) and make it `champion` if it wins against
    the current champion (mlflow/champion_policy.py).

    The decision is kept in the run state (`registered`), as tags of the parent run, and on the new model version.
    """
    from cerebro_ops.core.encoding import Encoding
    from cerebro_ops.data.reader import load_raw_split
    from cerebro_ops.mlflow import champion_policy

    repo, state, snapshot = open_run(spec, run_id)
    if state.registered:
        return state.registered
    best = state.selected
    if not best:
        raise StudyFailed(f"run {run_id} has no successful config to register")
    meta, metric = state.meta, snapshot.train.metric
    model = _selected_model(repo, state, snapshot, best)
    encoding = Encoding.from_meta(meta)
    val_rows = load_raw_split(repo.store.url("data"), "val", meta)
    tracker = open_tracker(snapshot)
    verdict = champion_policy.judge(tracker, snapshot, model, encoding, val_rows, run_id)
    current = verdict.current
    decision = {"model_id": best, "metric": metric, "challenger": verdict.challenger, "champion": verdict.champion,
                "rows": {"compared": verdict.compared, "validation": len(val_rows)}}
    if not verdict.promote:
        decision.update(promoted=False, version=current["version"], replaced=None, reason=verdict.reason)
        log.info("champion %s v%s kept: %s", snapshot.name, decision["version"], decision["reason"])
    else:
        replaced = current["version"] if current is not None else None
        decision.update(promoted=True, version=None, replaced=replaced, reason=verdict.reason)
        # An input example of real rows, unless the trigger chose the data: then made-up typical rows, so no
        # row of a source the spec's author did not name ends up in the registry.
        example = encoding.typical_rows() if state.overrides.get("source") else val_rows.head(5)
        uri = tracker.log_raw_rows_model(state.models[best].mlflow_run, model, meta, example)
        decision["version"] = _register_champion(tracker, repo, state, snapshot, uri, decision)
        tracker.describe_model(snapshot.name, champion_policy.model_description(snapshot))
        log.info("registered %s v%s as champion: %s", snapshot.name, decision["version"], verdict.reason)
    tracker.record_decision(state.mlflow_parent, decision)
    tracker.end_study(state.mlflow_parent, MLFLOW_END_STATUS[ModelStatus.FINISHED])
    state.registered = decision
    repo.save(state)
    return decision


def _register_champion(tracker, repo, state: RunState, snapshot: StudySpec, uri: str, decision: dict) -> str:
    """Record the hashes of the selected config's training rows in its child run, and register its logged
    model `uri` as the champion (with the decision's value, reason and the version it replaces)."""
    from cerebro_ops.core.encoding import Encoding
    from cerebro_ops.data.reader import load_raw_split

    encoding = Encoding.from_meta(state.meta)
    columns = [encoding.label, *encoding.feature_columns]
    train_rows = load_raw_split(repo.store.url("data"), "train", state.meta)
    rows_sha = tracker.log_train_rows(state.models[state.selected].mlflow_run, row_hashes(train_rows, columns))
    tags = {"cerebro.run_id": state.run_id, "cerebro.model_id": state.selected,
            **({TRAIN_ROWS_SHA_TAG: rows_sha, TRAIN_ROWS_COLUMNS_TAG: json.dumps(columns)} if rows_sha else {})}
    return tracker.register_champion(snapshot.name, uri, snapshot.train.metric, decision["challenger"], tags,
                                     replaced=decision["replaced"], reason=decision["reason"])


def _selected_model(repo, state, snapshot: StudySpec, best: str):
    """The selected config's Keras model, restored from its best-epoch checkpoint."""
    from cerebro_ops.keras.trainer import HopTrainer, data_info

    row = next(r for r in leaderboard_rows(state, snapshot.train.metric, snapshot.train.direction)
               if r["model_id"] == best)
    blob = repo.store.read_blob(row["ckpt"]["ckpt"], row["ckpt"]["sha256"])
    trainer = HopTrainer(data_info(state.meta), deterministic=snapshot.train.deterministic)
    return trainer.keras_model(snapshot.model_builder, state.models[best].params, blob)


# --------------------------------------------------------------------------------------------- whole run

# shape: run_id/overrides/replay_of say which run, spark/launcher/progress/builder_check are what the CLI
# and the tests inject (a shared session, threads instead of Spark, the progress bar); all but spec are optional.
def run(spec: StudySpec, run_id: str | None = None, overrides: dict | None = None, spark=None,
        launcher=None, progress=None, register_model: bool = True, replay_of: RunState | None = None,
        builder_check: BuilderCheck | None = None) -> dict:
    """Every step of the run's plan in one process with one Spark session (the CLI path)."""
    from cerebro_ops.core.plan import build_plan, step_call

    run_id = run_id or new_run_id()
    # A session made here: its Python workers import TensorFlow during prepare, not when the first epoch starts
    # (the CLI passes its session, already warming).
    state = prepare(spec, run_id, spark=spark, overrides=overrides, replay_of=replay_of, builder_check=builder_check,
                    warm_workers=spark is None and launcher is None)
    snapshot = run_spec(spec, state)
    spark = spark if launcher is not None else spark_session(snapshot, spark)
    kept = KeptAcrossSteps()  # an epoch's MLflow logging overlaps the next epoch; the workers stay up
    injected = {"partition": {"spark": spark},
                "epoch": {"spark": spark, "launcher": launcher, "on_record": progress.record if progress else None,
                          "kept": kept}}
    results = {"select": "leaderboard", "register": "registered"}
    result = {"run_id": run_id}
    try:
        for step in build_plan(snapshot):  # the run's own plan: its epochs and TPE batches
            if step.kind == "prepare" or (step.kind == "register" and not register_model):
                continue
            if step.kind == "epoch" and progress:
                progress.start_epoch(step.epoch)
            if step.kind != "epoch":
                kept.tracking.drain()  # the other steps read or write the same MLflow runs
            name, args = step_call(step)
            out = globals()[name](spec, run_id, *args, **injected.get(step.kind, {}))
            if step.kind in results:
                result[results[step.kind]] = out
    finally:
        kept.close()
    return result


def latest_run(spec: StudySpec, unfinished: bool = False) -> str | None:
    return RunRepository.latest(spec.runtime.store, spec.name, unfinished)


__all__ = ["validate", "prepare", "partition", "run_epoch", "next_batch", "select", "register", "run",
           "latest_run", "best_value", "load_run", "load_state", "run_spec", "epoch_needs_training",
           "hop_records"]
