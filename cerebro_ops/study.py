"""A study run, step by step: prepare → partition → (epoch 1..N of batch b, next batch)... → select → register.

The CLI and the Airflow operators call these same functions. Every step reads and writes the run's state
(:class:`~cerebro_ops.core.run_state.RunState`, saved by its :class:`~cerebro_ops.core.run_state.RunRepository`
atomically after the step's work is safe), so any step can be re-run: a finished step is a no-op, an
interrupted epoch resumes from its hop records.

Prepare snapshots the effective spec (the spec with the trigger's overrides) in the run state; every later
step works from that snapshot and uses its `spec` argument only to find the run (store and study name), so
editing the YAML mid-run changes nothing in a run already prepared.

A TPE study trains its configs in batches (tpe.py); grid and random studies are one batch 0. A batch's epochs
count from 1; ``next_batch`` tells Optuna a finished batch's results and adds the next batch's configs.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import uuid
from typing import Callable

from cerebro_ops.core.errors import DataError, StudyFailed
from cerebro_ops.core.leaderboard import best_row, best_value, leaderboard_rows
from cerebro_ops.core.prepare_summary import summary_lines
from cerebro_ops.core.row_hashes import row_hashes
from cerebro_ops.mlflow.tracking import TRAIN_ROWS_COLUMNS_TAG, TRAIN_ROWS_SHA_TAG
from cerebro_ops.core.run_state import (EpochEntry, ModelRecord, ModelStatus, ReplayOf, RunRepository, RunState,
                                        TpeBatches, effective_spec)
from cerebro_ops.core.search import sample_configs
from cerebro_ops.data.source import check_source
from cerebro_ops.core.source_policy import no_values_in_errors
from cerebro_ops.core.spec import StudySpec, load_spec

log = logging.getLogger("cerebro_ops.study")

# How a config's MLflow child run ends: MLflow's run statuses are its own vocabulary, not ModelStatus.
MLFLOW_END_STATUS = {ModelStatus.FINISHED: "FINISHED", ModelStatus.FAILED: "FAILED", ModelStatus.PRUNED: "KILLED"}


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
    if snapshot.search.method == "tpe" and state.tpe is None and state.prepared:
        # prepared before TPE batches were part of the state: its models so far are the first batch
        from cerebro_ops.core.tpe import planned_sizes
        state.tpe = TpeBatches([list(state.models)], planned_sizes(snapshot, state.replay_of))
    return repo, state, snapshot


def load_run(spec: StudySpec, run_id: str) -> RunState:
    return open_run(spec, run_id)[1]


def load_state(spec: StudySpec, run_id: str) -> dict:
    """The run's state with state.json's keys (for reports and tests; a copy, changing it changes nothing)."""
    return load_run(spec, run_id).to_json()


def _tracker(spec: StudySpec):
    from cerebro_ops.mlflow.tracking import Tracker
    return Tracker(spec.runtime.tracking_uri, spec.runtime.experiment)


def _spark(spec: StudySpec, spark):
    if spark is not None:
        return spark
    from cerebro_ops.spark.session import get_spark
    return get_spark(spec.runtime.spark_master, app_name=f"cerebro-{spec.name}")


def provisional_info(spec: StudySpec):
    """Data shape as far as the spec tells, to check the builder before any data work."""
    from cerebro_ops.keras.trainer import DataInfo
    d = spec.data
    if len(d.feature_columns) == 1 and d.arrays:
        shape = d.arrays[0].shape
    else:
        shape = (len(d.numeric) + 2 * len(d.categorical) + sum(math.prod(a.shape) for a in d.arrays),)
    classes = {"binary": 2, "multiclass": 3, "regression": 1}[d.task]
    return DataInfo(tuple(shape), d.task, classes)


# --------------------------------------------------------------------------------------------- steps

def validate(spec_path: str, overrides: dict | None = None, check_model: bool = True) -> StudySpec:
    """Everything that can be checked before work starts: spec, overrides, builder, data source."""
    from cerebro_ops.core.params import validate_overrides

    spec = load_spec(spec_path)
    overrides = validate_overrides(spec, overrides or {})
    spec = spec.with_overrides(**overrides)
    with no_values_in_errors("source" in overrides):
    from cerebro_ops.data.estimate import check_memory
    check_memory(spec)  # a worker memory budget too small for one batch fails here, before any work
        check_source(spec)
    if check_model:
        check_model_builder(spec, sample_configs(spec)[0].params)
    return spec


def check_model_builder(spec: StudySpec, params: dict) -> None:
    """Build the model of one config on the driver: a broken builder fails here, before any run exists."""
    from cerebro_ops.keras.trainer import check_builder

    check_builder(spec.model_builder, params, provisional_info(spec), spec.train.metric)


def prepare(spec: StudySpec, run_id: str, spark=None, overrides: dict | None = None,
            tags: dict | None = None, replay_of: RunState | None = None) -> RunState:
    """Sample configs, open the MLflow runs, and prepare the data (clean, encode, split, shuffle).

    The effective spec (`spec` with the validated `overrides`) is snapshotted in the run state: every later
    step uses it. `replay_of`: the state of an earlier run whose recorded configs (and TPE batches) are used
    instead of sampling (``cerebro-ops replay``)."""
    from cerebro_ops.core.params import validate_overrides
    from cerebro_ops.spark import prepare as prep
    from cerebro_ops.core.tpe import planned_sizes, replay_configs

    overrides = validate_overrides(spec, overrides or {})
    repo = repository(spec, run_id)
    if repo.exists() and repo.load().prepared:
        log.info("run %s already prepared; nothing to do", run_id)
        return load_run(spec, run_id)
    snapshot = spec.with_overrides(**overrides)
    with no_values_in_errors("source" in overrides):
        check_source(snapshot)
    configs = replay_configs(snapshot, replay_of) if replay_of else sample_configs(snapshot)
    check_model_builder(snapshot, configs[0].params)  # before the data work and the MLflow runs
    state = RunState(run_id=run_id, study=spec.name, created=dt.datetime.now(dt.timezone.utc).isoformat(),
                     overrides=overrides, spec=snapshot.to_dict(), epochs=snapshot.train.epochs, seed=snapshot.seed,
                     tags=tags or {})
    for c in configs:
        state.add_model(c.model_id, c.params)
    if replay_of:
        state.replay_of = ReplayOf(replay_of.run_id, replay_of.configs,
                                   replay_of.tpe.batches if replay_of.tpe else None)
    if snapshot.search.method == "tpe":
        state.tpe = TpeBatches([[c.model_id for c in configs]], planned_sizes(snapshot, state.replay_of))
    try:  # the data is checked (and written) before any MLflow run or run state exists
        with no_values_in_errors("source" in overrides):
            state.meta = prep.prepare(_spark(snapshot, spark), snapshot, repo.store.sub("data"))
    except DataError:
        repo.delete()  # a run whose data is bad leaves nothing behind (this run has no state yet)
        raise
    tracker = _tracker(snapshot)
    state.mlflow_parent = tracker.start_study(snapshot, run_id, tags or {})
    tracker.log_prepare_summary(state.mlflow_parent, state.meta.get("summary"))
    if state.mlflow_parent:
        for m, rec in state.models.items():
            rec.mlflow_run = tracker.start_config(state.mlflow_parent, m, rec.params)
    state.prepared = True
    repo.save(state)
    log.info("prepared run %s: %d configs, %s rows", run_id, len(configs), state.meta.get("rows"))
    for line in summary_lines(state.meta.get("summary") or {}):
        log.info("data: %s", line)
    return state


def partition(spec: StudySpec, run_id: str, spark=None) -> RunState:
    from cerebro_ops.spark import prepare as prep

    repo, state, snapshot = open_run(spec, run_id)
    if state.partitioned:
        return state
    from cerebro_ops.data.estimate import check_memory
    rows = state.meta.get("rows") or {}
    for line in check_memory(snapshot, (int(rows.get("train", 0)), int(rows.get("val", 0))), state.meta["input_shape"]):
        log.info(line)  # cached or streamed, per worker, from the prepared row counts
    state.meta = prep.partition(spark_session(snapshot, spark), snapshot, repo.store.sub("data"),
                                snapshot.train.workers)
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


# Seven parameters: (spec, run_id, epoch, batch) name the step; spark/launcher/on_record are optional injection
# points for the CLI and the tests.
def run_epoch(spec: StudySpec, run_id: str, epoch: int, batch: int = 0, spark=None, launcher=None,
              on_record: Callable[[dict], None] | None = None) -> dict:
    """Train batch `batch`'s live models one epoch with MOP (epochs of a batch count from 1).

    Idempotent: a finished epoch is not trained again; an epoch or batch beyond the run's (a run triggered
    with fewer epochs or configs than the DAG has steps for) is a no-op."""
    from cerebro_ops.mop.epoch import EpochContext, EpochDriver, FaultHooks
    from cerebro_ops.mop.hop_server import HopTimeouts

    repo, state, snapshot = open_run(spec, run_id)
    skip = _epoch_skip(state, epoch, batch)
    if skip is not None:
        log.info("epoch %d of batch %d: %s; nothing to do", epoch, batch, skip)
        return {"epoch": epoch, "batch": batch, "skipped": skip}
    live = {m: state.models[m].ckpt for m in state.live_models()}
    store = repo.store
    tracker = _tracker(snapshot)
    if live:
        tracker.warm_up()  # a new task process opens MLflow while the epoch trains, not after it
        if launcher is None:
            from cerebro_ops.spark.epoch_job import spark_launcher
            launcher = spark_launcher(_spark(snapshot, spark), snapshot.train.workers)
        train = snapshot.train
        replayed = repository(spec, state.replay_of.run_id).store if state.replay_of else None
        ctx = EpochContext(store, epoch, state.configs, live, snapshot.model_builder, snapshot.seed, train.workers,
                           store.url("data"), state.meta, train.deterministic, snapshot.runtime.max_hop_retries,
                           hop_order=train.hop_order, replay_store=replayed, validation="partitioned",
                           memory_mb=snapshot.runtime.worker_memory_mb, local_dir=snapshot.runtime.local_dir)
        timeouts = HopTimeouts(connect_s=snapshot.runtime.connect_timeout_s, lost_s=snapshot.runtime.worker_lost_s)
        result = EpochDriver(ctx, launcher, hooks=FaultHooks.from_env(), on_record=on_record, timeouts=timeouts).run()
        models, wall = result.models, result.wall_s
    else:
        models, wall = {}, 0.0
    for m, res in models.items():
        rec = state.models[m]
        if res.status == ModelStatus.FAILED:
            rec.status, rec.reason = ModelStatus.FAILED, res.reason
            _end_child(tracker, rec, {"cerebro.failure_reason": res.reason[:500], "failed_at_epoch": str(epoch)})
            continue
        metrics = {"train_loss": res.train_loss, **{f"val_{k}": v for k, v in res.val.items()}}
        rec.ckpt = res.ckpt
        rec.history.append(EpochEntry(epoch, metrics, res.ckpt))
        tracker.log_epoch(rec.mlflow_run, epoch, metrics)
        _track_epoch_end(tracker, store, rec, snapshot, epoch)
    pruned = _prune(snapshot, state, epoch)
    for m in pruned:
        rec = state.models[m]
        rec.status, rec.reason = ModelStatus.PRUNED, f"pruned by {snapshot.pruning.method} after epoch {epoch}"
        _end_child(tracker, rec, {"pruned_at_epoch": str(epoch)})
    state.epochs_done = epoch
    repo.save(state)
    failed = state.with_status(ModelStatus.FAILED)
    if state.models and len(failed) == len(state.models):
        raise StudyFailed(f"every config of run {run_id} failed: " + "; ".join(
            f"{m}: {state.models[m].reason}" for m in failed))
    return {"epoch": epoch, "batch": batch, "wall_s": round(wall, 3), "live_models": len(state.live_models()),
            "pruned": sorted(pruned), "failed": failed}


def _track_epoch_end(tracker, store, rec: ModelRecord, spec: StudySpec, epoch: int) -> None:
    """The config's best epoch so far and its checkpoint at the end of this epoch, in its child run.

    On the driver, after the epoch's hops: the workers' hop path never waits for MLflow."""
    value, entry = best_value(rec.history, spec.train.metric, spec.train.direction)
    if value is not None:
        tracker.log_best(rec.mlflow_run, spec.train.metric, value, entry.epoch, epoch)
    if not rec.mlflow_run or not rec.ckpt:
        return
    try:
        data = store.read_blob(rec.ckpt["ckpt"], rec.ckpt["sha256"])
    except Exception as exc:  # noqa: BLE001 - tracking never stops training; the next epoch repairs a bad file
        log.warning("checkpoint %s of %s not logged to MLflow: %s", rec.ckpt["ckpt"], rec.model_id, exc)
        return
    tracker.log_checkpoint(rec.mlflow_run, epoch, data, rec.ckpt["sha256"])


def _prune(spec: StudySpec, state: RunState, epoch: int) -> set[str]:
    """Models to stop after this epoch; the last epoch prunes nothing (they are all finished)."""
    from cerebro_ops.core.pruning import make_pruner, to_minimise

    if epoch >= state.epochs:
        return set()
    pruner = make_pruner(spec.pruning, state.epochs, sorted(state.models))
    hist = {m: to_minimise([h.value(spec.train.metric) for h in state.models[m].history], spec.train.direction)
            for m in state.live_models()}
    return pruner.prune(hist, epoch)


def _finish_live(state: RunState, tracker) -> None:
    """The live models have trained every epoch of their batch: they are finished."""
    for m in state.live_models():
        rec = state.models[m]
        rec.status = ModelStatus.FINISHED
        _end_child(tracker, rec)


def _end_child(tracker, rec: ModelRecord, tags: dict | None = None) -> None:
    """End the model's MLflow child run with its status (as a tag too)."""
    tracker.end_config(rec.mlflow_run, MLFLOW_END_STATUS[rec.status], {"cerebro.status": rec.status.value,
                                                                       **(tags or {})})


def next_batch(spec: StudySpec, run_id: str, batch: int) -> dict:
    """Tell Optuna the results of batch `batch` and ask batch `batch + 1`: its models (and their MLflow child
    runs) join the run with a fresh epoch counter. Idempotent; a no-op past the run's last batch."""
    from cerebro_ops.core.tpe import next_configs

    repo, state, snapshot = open_run(spec, run_id)
    if batch + 1 >= state.batch_count:
        return {"batch": batch, "skipped": "no later batch"}
    if batch < state.current_batch:
        return {"batch": batch, "skipped": "already done"}
    if batch > state.current_batch or state.epochs_done < state.epochs:
        done = state.epochs_done if batch == state.current_batch else 0
        raise DataError("batch", f"batch {batch} is not trained ({done} of {state.epochs} epochs done)",
                        "run its epochs first (run the steps in order)")
    configs = next_configs(snapshot, state, batch + 1)
    tracker = _tracker(snapshot)
    _finish_live(state, tracker)
    for c in configs:
        rec = state.add_model(c.model_id, c.params)
        if state.mlflow_parent:
            rec.mlflow_run = tracker.start_config(state.mlflow_parent, c.model_id, c.params)
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


def hop_table(records: list[dict], seed: int, store, child_runs: dict[str, str | None]) -> list[dict]:
    """One row per unit of the run, for the MLflow table hops.json: what ran where and when, the seed of a
    train hop (as EpochPass.payload derives it), the checkpoint it wrote (store URI and sha256) and, for a
    config's last hop of an epoch, that checkpoint's copy in its child run (``mlflow_ckpt``). With the
    partition data, these rows are enough to replay any epoch from an MLflow checkpoint."""
    from cerebro_ops.mop.epoch import derive_seed
    from cerebro_ops.mlflow.tracking import checkpoint_artifact

    last_hop: dict[tuple, int] = {}
    for r in records:
        if r.get("kind", "train") == "train" and r.get("status") == "ok":
            key = (r["epoch"], r["model_id"])
            last_hop[key] = max(last_hop.get(key, -1), r["hop"])
    rows = []
    for r in records:
        kind, epoch, m = r.get("kind", "train"), r["epoch"], r["model_id"]
        train = kind == "train"
        child = child_runs.get(m)
        epoch_end = train and r.get("status") == "ok" and last_hop.get((epoch, m)) == r["hop"]
        rows.append({"unit": f"{m}/e{epoch}/{kind}/p{r['partition']}", "epoch": epoch, "model_id": m, "kind": kind,
                     "hop": r.get("hop"), "partition": r["partition"], "worker": r.get("worker"), "pid": r.get("pid"),
                     "start": r.get("start"), "end": r.get("end"), "train_s": r.get("train_s"),
                     "status": r.get("status"), "n": r.get("n"), "loss": r.get("loss"),
                     "seed": derive_seed(seed, m, epoch, r["partition"]) if train else None,
                     "ckpt": store.url(r["ckpt"]) if r.get("ckpt") else None, "sha256": r.get("sha256"),
                     "mlflow_ckpt": f"runs:/{child}/{checkpoint_artifact(epoch)}" if epoch_end and child else None})
    return rows


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
    tracker = _tracker(snapshot)
    _finish_live(state, tracker)
    rows = leaderboard_rows(state, snapshot.train.metric, snapshot.train.direction)
    from cerebro_ops.mop.records import RecordLog
    store = repo.store
    hops = RecordLog(store)
    records = hops.read_all()
    hops.write_log(records)
    store.write_json("leaderboard.json", rows)
    tracker.log_study(state.mlflow_parent, yaml.safe_dump(snapshot.to_dict(), sort_keys=False), rows, records,
                      snapshot.train.metric)
    tracker.log_hop_table(state.mlflow_parent, hop_table(records, snapshot.seed, store,
                                                         {m: r.mlflow_run for m, r in state.models.items()}))
    best = best_row(rows, snapshot.train.metric)
    state.selected = best["model_id"] if best else None
    repo.save(state)
    return rows


def register(spec: StudySpec, run_id: str) -> dict:
    """Log the best model as a raw-rows MLflow pyfunc (serving.py) and make it `champion` if it wins.

    The challenger and the current champion are scored on the same rows, this run's raw validation rows less
    those the champion trained on (_comparison_rows), each through its own encoding (the champion's comes with
    its registered model), with the compiled metric in the label's units.
    The decision is kept in the run state (`registered`), as tags of the parent run, and on the new model version.
    """
    from cerebro_ops.core.encoding import Encoding
    from cerebro_ops.data.reader import load_raw_split

    repo, state, snapshot = open_run(spec, run_id)
    if state.registered:
        return state.registered
    best = state.selected
    if not best:
        raise StudyFailed(f"run {run_id} has no successful config to register")
    meta, metric = state.meta, snapshot.train.metric
    model = _selected_model(repo, state, snapshot, best)
    encoding = Encoding.from_meta(meta)
    columns = [encoding.label, *encoding.feature_columns]
    val_rows = load_raw_split(repo.store.url("data"), "val", meta)
    tracker = _tracker(snapshot)
    current = tracker.champion(snapshot.name)
    rows, on_rows = _comparison_rows(tracker, current, val_rows, columns)
    challenger = _metric_of(model, encoding, rows, snapshot.metric_key)
    champ, unusable = _score_champion(tracker, current, rows, snapshot, run_id)
    decision = {"model_id": best, "metric": metric, "challenger": challenger, "champion": champ,
                "rows": {"compared": len(rows), "validation": len(val_rows)}}
    if champ is not None and not _better(challenger, champ, snapshot.train.direction):
        decision.update(promoted=False, version=current["version"], replaced=None,
                        reason=f"not promoted: challenger {metric} {challenger:.6g} does not beat "
                               f"{champ:.6g} of v{current['version']} {on_rows}")
        log.info("champion %s v%s kept: %s", snapshot.name, decision["version"], decision["reason"])
    else:
        reason = _promotion_reason(metric, challenger, champ, current, unusable, snapshot.train.direction, on_rows)
        child = state.models[best].mlflow_run
        # An input example of real rows, unless the trigger chose the data: then made-up typical rows, so no
        # row of a source the spec's author did not name ends up in the registry.
        example = encoding.typical_rows() if state.overrides.get("source") else val_rows.head(5)
        uri = tracker.log_raw_rows_model(child, model, meta, example)
        train_rows = load_raw_split(repo.store.url("data"), "train", meta)
        rows_sha = tracker.log_train_rows(child, row_hashes(train_rows, columns))
        replaced = current["version"] if current is not None else None
        tags = {"cerebro.run_id": run_id, "cerebro.model_id": best,
                **({TRAIN_ROWS_SHA_TAG: rows_sha, TRAIN_ROWS_COLUMNS_TAG: json.dumps(columns)} if rows_sha else {})}
        version = tracker.register_champion(snapshot.name, uri, metric, challenger, tags,
                                            replaced=replaced, reason=reason)
        decision.update(promoted=True, version=version, replaced=replaced, reason=reason)
        tracker.describe_model(snapshot.name, _model_description(snapshot))
        log.info("registered %s v%s as champion: %s", snapshot.name, version, reason)
    tracker.record_decision(state.mlflow_parent, decision)
    tracker.end_study(state.mlflow_parent, MLFLOW_END_STATUS[ModelStatus.FINISHED])
    state.registered = decision
    repo.save(state)
    return decision


_ON_ROWS = "on this run's validation rows"


def _comparison_rows(tracker, current: dict | None, val_rows, columns: list[str]):
    """(the validation rows challenger and champion are compared on, how they were chosen). Rows the champion
    trained on (by the content hashes its registration recorded) are left out: on them it would look better
    than it is. When it recorded none, or no row is left, all rows are used and the decision says so."""
    from cerebro_ops.core.row_hashes import unseen

    if current is None:
        return val_rows, _ON_ROWS
    v = current["version"]
    recorded = (current.get("tags") or {}).get(TRAIN_ROWS_COLUMNS_TAG)
    seen = tracker.champion_train_rows(current) if recorded else None
    if seen is None:
        return val_rows, f"{_ON_ROWS} (v{v} recorded no training rows: it may have trained on some of them)"
    if json.loads(recorded) != columns:
        return val_rows, f"{_ON_ROWS} (v{v} trained on other columns: its training rows cannot be matched)"
    fresh = unseen(val_rows, columns, seen)
    if fresh.all():
        return val_rows, f"{_ON_ROWS}, none of which v{v} trained on"
    if not fresh.any():
        return val_rows, f"{_ON_ROWS} (v{v} trained on all {len(val_rows)} of them: the comparison favours it)"
    return val_rows[fresh].reset_index(drop=True), (f"on the {int(fresh.sum())} of this run's {len(val_rows)} "
                                                    f"validation rows that v{v} did not train on")


def _model_description(spec: StudySpec) -> str:
    """The registered model's description: the study's, and how its champion is chosen."""
    how = (f"cerebro-ops study {spec.name}: the version behind alias 'champion' is the config with the best "
           f"{spec.train.metric} ({spec.train.direction}) that beat the previous champion on its run's validation "
           "rows the previous champion did not train on.")
    return f"{spec.description.strip()}\n\n{how}" if spec.description.strip() else how


def _selected_model(repo, state, snapshot: StudySpec, best: str):
    """The selected config's Keras model, restored from its best-epoch checkpoint."""
    from cerebro_ops.keras.trainer import HopTrainer, data_info

    row = next(r for r in leaderboard_rows(state, snapshot.train.metric, snapshot.train.direction)
               if r["model_id"] == best)
    blob = repo.store.read_blob(row["ckpt"]["ckpt"], row["ckpt"]["sha256"])
    trainer = HopTrainer(data_info(state.meta), deterministic=snapshot.train.deterministic)
    return trainer.keras_model(snapshot.model_builder, state.models[best].params, blob)


def _score_champion(tracker, current: dict | None, val_rows, snapshot: StudySpec, run_id: str):
    """(the current champion's metric on these raw rows through its own encoding, or None; why it could not
    be scored, or None). A champion that cannot score them is replaced.

    The champion is loaded as data only (its Keras file in safe mode and its encoding JSON, each checked against
    the sha256 recorded at its registration: champion_check.py), never as the pyfunc it is registered as:
    whoever can write the registry could point the alias at a model whose Python code would run here."""
    from cerebro_ops.keras.champion_check import UntrustedChampion

    if current is None:
        return None, None
    try:
        old = tracker.load_champion_data(current)
        return _metric_of(old.keras_model, old.encoding, val_rows, snapshot.metric_key), None
    except Exception as exc:  # noqa: BLE001 - a champion that cannot score these rows is replaced
        text = str(exc).splitlines()[0] if str(exc) else ""
        unusable = (text if isinstance(exc, UntrustedChampion) else f"{type(exc).__name__}: {text}")[:300]
        log.warning("champion v%s of %s could not be scored on run %s's validation rows (%s); it will be "
                    "replaced", current["version"], snapshot.name, run_id, unusable)
        return None, unusable


# Seven parameters: the two scores, the champion and why it could not be scored, the direction, the rows.
def _promotion_reason(metric: str, challenger: float, champ: float | None, current: dict | None,
                      unusable: str | None, direction: str, on_rows: str = _ON_ROWS) -> str:
    if current is None:
        return f"promoted: no champion yet ({metric} {challenger:.6g} {on_rows})"
    if champ is None:  # which rows it would have been scored on does not matter then
        return (f"promoted: {metric} {challenger:.6g}; champion v{current['version']} could not be scored "
                f"{_ON_ROWS} ({unusable})")
    sign = "<" if direction == "min" else ">"
    return f"promoted: {metric} {challenger:.6g} {sign} {champ:.6g} of v{current['version']} {on_rows}"


def _metric_of(model, encoding, rows, key: str) -> float:
    """The compiled metric `key` of `model` on raw `rows` (features and label), encoded by `encoding`."""
    from cerebro_ops.core.encoding import in_label_units, loss_name
    from cerebro_ops.keras.serving import keras_inputs

    if encoding.label not in rows.columns:
        raise DataError(encoding.label, "the validation rows have no label column", "score rows with their label")
    x = keras_inputs(model, encoding.encode(rows), encoding.feature_spans)
    res = model.evaluate(x, encoding.encode_labels(rows[encoding.label]), batch_size=8192, verbose=0,
                         return_dict=True)
    res = in_label_units(res, encoding.label_stats["std"] if encoding.label_stats else None, loss_name(model))
    if key not in res:
        raise DataError("train.metric", f"model reports {sorted(res)}, not {key!r}", "pick one of those")
    return float(res[key])


def _better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "min" else a > b


# --------------------------------------------------------------------------------------------- whole run

# More than six parameters: run_id/overrides/replay_of say which run, spark/launcher/progress are what the CLI
# and the tests inject (a shared session, threads instead of Spark, the progress bar); all but spec are optional.
def run(spec: StudySpec, run_id: str | None = None, overrides: dict | None = None, spark=None,
        launcher=None, progress=None, register_model: bool = True, replay_of: RunState | None = None) -> dict:
    """Every step of the run's plan in one process with one Spark session (the CLI path)."""
    from cerebro_ops.core.plan import build_plan

    run_id = run_id or new_run_id()
    state = prepare(spec, run_id, spark=spark, overrides=overrides, replay_of=replay_of)
    snapshot = run_spec(spec, state)
    spark = spark if launcher is not None else _spark(snapshot, spark)

    def train(epoch: int, batch: int) -> None:
        if progress:
            progress.start_epoch(epoch)
        run_epoch(spec, run_id, epoch, batch, spark=spark, launcher=launcher,
                  on_record=progress.record if progress else None)

    result = {"run_id": run_id}
    for step in build_plan(snapshot):  # the run's own plan: its epochs and TPE batches
        if step.kind == "partition":
            partition(spec, run_id, spark)
        elif step.kind == "epoch":
            train(step.epoch, step.batch)
        elif step.kind == "next_batch":
            next_batch(spec, run_id, step.batch)
        elif step.kind == "select":
            result["leaderboard"] = select(spec, run_id)
        elif step.kind == "register" and register_model:
            result["registered"] = register(spec, run_id)
    return result


def latest_run(spec: StudySpec, unfinished: bool = False) -> str | None:
    return RunRepository.latest(spec.runtime.store, spec.name, unfinished)


__all__ = ["validate", "prepare", "partition", "run_epoch", "next_batch", "select", "register", "run",
           "latest_run", "best_value", "load_run", "load_state", "run_spec", "epoch_needs_training",
           "hop_records", "hop_table"]
