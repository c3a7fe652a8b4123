"""A study run, step by step: prepare → partition → epoch 1..N → select → register.

The CLI and the Airflow operators call these same functions. Every step reads and writes the run's
state in the store (`state.json`, written atomically after the step's work is safe), so any step can be
re-run: a finished step is a no-op, an interrupted epoch resumes from its hop records.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import uuid
from typing import Callable

from .errors import DataError, StudyFailed
from .leaderboard import best_value, leaderboard_rows
from .search import sample_configs
from .source import check_source
from .spec import StudySpec, load_spec
from .store import Store, run_store

log = logging.getLogger("cerebro_ops.study")

STATE = "state.json"


# --------------------------------------------------------------------------------------------- helpers

def new_run_id() -> str:
    return f"cli-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _store(spec: StudySpec, run_id: str) -> Store:
    return run_store(spec.runtime.store, spec.name, run_id)


def load_state(spec: StudySpec, run_id: str) -> dict:
    st = _store(spec, run_id)
    if not st.exists(STATE):
        raise DataError("run_id", f"run {run_id!r} of study {spec.name!r} has not been prepared",
                        "run the prepare step first (cerebro-ops run, or the DAG's prepare task)")
    return st.read_json(STATE)


def _save_state(spec: StudySpec, run_id: str, state: dict) -> None:
    _store(spec, run_id).write_json(STATE, state)


def effective_spec(spec: StudySpec, state: dict) -> StudySpec:
    return spec.with_overrides(**state.get("overrides", {}))


def _tracker(spec: StudySpec):
    from .tracking import Tracker
    return Tracker(spec.runtime.tracking_uri, spec.runtime.experiment)


def _spark(spec: StudySpec, spark):
    if spark is not None:
        return spark
    from .spark.session import get_spark
    return get_spark(spec.runtime.spark_master, app_name=f"cerebro-{spec.name}")


def provisional_info(spec: StudySpec):
    """Data shape as far as the spec tells, to check the builder before any data work."""
    from .trainer import DataInfo
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
    from .params import validate_overrides

    spec = load_spec(spec_path)
    spec = spec.with_overrides(**validate_overrides(spec, overrides or {}))
    check_source(spec)
    if check_model:
        check_model_builder(spec, sample_configs(spec)[0].params)
    return spec


def check_model_builder(spec: StudySpec, params: dict) -> None:
    """Build the model of one config on the driver: a broken builder fails here, before any run exists."""
    from .trainer import check_builder

    check_builder(spec.model_builder, params, provisional_info(spec), spec.train.metric)


def prepare(spec: StudySpec, run_id: str, spark=None, overrides: dict | None = None,
            tags: dict | None = None, replay_of: dict | None = None) -> dict:
    """Sample configs, open the MLflow runs, and prepare the data (clean, encode, split, shuffle).

    `replay_of`: the state.json of an earlier run whose recorded configs (and TPE batches) are used
    instead of sampling (``cerebro-ops replay``)."""
    from .params import validate_overrides
    from .spark import prepare as prep

    overrides = validate_overrides(spec, overrides or {})
    eff = spec.with_overrides(**overrides)
    check_source(eff)
    st = _store(spec, run_id)
    state = st.read_json(STATE, default={}) if st.exists(STATE) else {}
    if state.get("prepared"):
        log.info("run %s already prepared; nothing to do", run_id)
        return state
    if replay_of:
        from .tpe import replay_configs
        configs = replay_configs(eff, replay_of)
    else:
        configs = sample_configs(eff)
    check_model_builder(eff, configs[0].params)  # before the data work and the MLflow runs
    state = {
        "run_id": run_id, "study": spec.name, "created": dt.datetime.now(dt.timezone.utc).isoformat(),
        "overrides": overrides, "epochs": eff.train.epochs, "seed": eff.seed,
        "configs": {c.model_id: c.params for c in configs},
        "status": {c.model_id: "RUNNING" for c in configs}, "reasons": {},
        "ckpt": {c.model_id: None for c in configs}, "history": {c.model_id: [] for c in configs},
        "epochs_done": 0, "mlflow": {}, "tags": tags or {},
    }
    try:  # the data is checked (and written) before any MLflow run or run state exists
        meta = prep.prepare(_spark(eff, spark), eff, st.sub("data"))
    except DataError:
        st.delete("")  # a run whose data is bad leaves nothing behind (this run has no state yet)
        raise
    state["meta"] = meta
    if replay_of:
        state["replay_of"] = {"run_id": replay_of["run_id"], "configs": replay_of["configs"],
                              "batches": (replay_of.get("tpe") or {}).get("batches")}
    tracker = _tracker(eff)
    parent = tracker.start_study(eff, run_id, tags or {})
    children = {m: tracker.start_config(parent, m, p) for m, p in state["configs"].items()} if parent else {}
    state["mlflow"] = {"parent": parent, "children": children}
    state["prepared"] = True
    _save_state(spec, run_id, state)
    log.info("prepared run %s: %d configs, %s rows", run_id, len(configs), meta.get("rows"))
    return state


def partition(spec: StudySpec, run_id: str, spark=None) -> dict:
    from .spark import prepare as prep

    state = load_state(spec, run_id)
    if state.get("partitioned"):
        return state
    eff = effective_spec(spec, state)
    meta = prep.partition(_spark(eff, spark), eff, _store(spec, run_id).sub("data"), eff.train.workers)
    state["meta"] = meta
    state["partitioned"] = True
    _save_state(spec, run_id, state)
    return state


def run_epoch(spec: StudySpec, run_id: str, epoch: int, spark=None, launcher=None,
              on_record: Callable[[dict], None] | None = None) -> dict:
    """Train all live models one epoch with MOP. Idempotent: a finished epoch is not trained again."""
    from .epoch import EpochContext, EpochDriver, FaultHooks

    state = load_state(spec, run_id)
    eff = effective_spec(spec, state)
    if epoch > state["epochs"]:
        log.info("epoch %d is beyond this run's %d epochs; nothing to do", epoch, state["epochs"])
        return {"epoch": epoch, "skipped": "beyond run epochs"}
    if epoch <= state["epochs_done"]:
        log.info("epoch %d already done; nothing to do", epoch)
        return {"epoch": epoch, "skipped": "already done"}
    if epoch != state["epochs_done"] + 1:
        raise DataError("epoch", f"epoch {epoch} cannot start: epoch {state['epochs_done'] + 1} is not done",
                        "run the epochs in order")
    live = {m: state["ckpt"][m] for m, s in state["status"].items() if s == "RUNNING"}
    st = _store(spec, run_id)
    if live:
        if launcher is None:
            from .spark.epoch_job import spark_launcher
            launcher = spark_launcher(_spark(eff, spark), eff.train.workers)
        ctx = EpochContext(st, epoch, state["configs"], live, eff.model_builder, eff.seed, eff.train.workers,
                           st.url("data"), state["meta"], eff.train.deterministic, eff.runtime.max_hop_retries)
        result = EpochDriver(ctx, launcher, hooks=FaultHooks.from_env(), on_record=on_record).run()
        models, wall = result.models, result.wall_s
    else:
        models, wall = {}, 0.0
    tracker = _tracker(eff)
    children = state["mlflow"].get("children") or {}
    for m, res in models.items():
        if res.status == "FAILED":
            state["status"][m] = "FAILED"
            state["reasons"][m] = res.reason
            tracker.end_config(children.get(m), "FAILED", {"cerebro.status": "FAILED",
                                                          "cerebro.failure_reason": res.reason[:500],
                                                          "failed_at_epoch": str(epoch)})
            continue
        metrics = {"train_loss": res.train_loss, **{f"val_{k}": v for k, v in res.val.items()}}
        state["ckpt"][m] = res.ckpt
        state["history"][m].append({"epoch": epoch, **metrics, "ckpt": res.ckpt})
        tracker.log_epoch(children.get(m), epoch, metrics)
    pruned = _prune(eff, state, epoch)
    for m in pruned:
        state["status"][m] = "PRUNED"
        state["reasons"][m] = f"pruned by {eff.pruning.method} after epoch {epoch}"
        tracker.end_config(children.get(m), "KILLED", {"cerebro.status": "PRUNED", "pruned_at_epoch": str(epoch)})
    state["epochs_done"] = epoch
    _save_state(spec, run_id, state)
    if state["status"] and all(s == "FAILED" for s in state["status"].values()):
        raise StudyFailed(f"every config of run {run_id} failed: " + "; ".join(
            f"{m}: {r}" for m, r in sorted(state["reasons"].items())))
    live_after = sum(1 for s in state["status"].values() if s == "RUNNING")
    return {"epoch": epoch, "wall_s": round(wall, 3), "live_models": live_after, "pruned": sorted(pruned),
            "failed": sorted(m for m, s in state["status"].items() if s == "FAILED")}


def _prune(spec: StudySpec, state: dict, epoch: int) -> set[str]:
    """Models to stop after this epoch; the last epoch prunes nothing (they are all finished)."""
    from .pruning import make_pruner, to_minimise

    if epoch >= state["epochs"]:
        return set()
    live = [m for m, s in state["status"].items() if s == "RUNNING"]
    pruner = make_pruner(spec.pruning, state["epochs"], sorted(state["configs"]))
    hist = {m: to_minimise([h.get(spec.train.metric) for h in state["history"][m]], spec.train.direction)
            for m in live}
    return pruner.prune(hist, epoch)


def hop_records(spec: StudySpec, run_id: str) -> list[dict]:
    from .epoch import load_records
    st = _store(spec, run_id)
    recs = [r for e in range(1, load_state(spec, run_id)["epochs"] + 1) for r in load_records(st, e)]
    return sorted(recs, key=lambda r: (r["start"], r["epoch"], r["model_id"]))


def select(spec: StudySpec, run_id: str) -> list[dict]:
    """Rank configs by the spec's metric and direction; write the leaderboard and hop log."""
    import yaml

    state = load_state(spec, run_id)
    eff = effective_spec(spec, state)
    if state["epochs_done"] < state["epochs"]:
        raise DataError("epochs", f"only {state['epochs_done']} of {state['epochs']} epochs are done",
                        "finish the epochs before selecting")
    tracker = _tracker(eff)
    children = state["mlflow"].get("children") or {}
    for m, s in state["status"].items():
        if s == "RUNNING":
            state["status"][m] = "FINISHED"
            tracker.end_config(children.get(m), "FINISHED", {"cerebro.status": "FINISHED"})
    rows = leaderboard_rows(state, eff.train.metric, eff.train.direction)
    st = _store(spec, run_id)
    records = hop_records(spec, run_id)
    st.write_bytes("hoplog.jsonl", "".join(_json_line(r) for r in records).encode())
    st.write_json("leaderboard.json", rows)
    tracker.log_study(state["mlflow"].get("parent"), yaml.safe_dump(eff.to_dict(), sort_keys=False), rows, records)
    state["selected"] = rows[0]["model_id"] if rows and rows[0]["status"] != "FAILED" else None
    _save_state(spec, run_id, state)
    return rows


def register(spec: StudySpec, run_id: str) -> dict:
    """Log the best model as a raw-rows MLflow pyfunc (serving.py) and make it `champion` if it wins.

    The challenger and the current champion are scored on the same rows, this run's raw validation rows, each
    through its own encoding (the champion's comes with its registered model), with the compiled metric.
    The decision is kept in state["registered"], as tags of the parent run, and on the new model version.
    """
    from .encoding import Encoding
    from .reader import load_raw_split
    from .trainer import HopTrainer, data_info

    state = load_state(spec, run_id)
    eff = effective_spec(spec, state)
    if state.get("registered"):
        return state["registered"]
    best = state.get("selected")
    if not best:
        raise StudyFailed(f"run {run_id} has no successful config to register")
    row = next(r for r in leaderboard_rows(state, eff.train.metric, eff.train.direction) if r["model_id"] == best)
    st = _store(spec, run_id)
    meta = state["meta"]
    trainer = HopTrainer(data_info(meta), deterministic=eff.train.deterministic)
    blob = st.read_blob(row["ckpt"]["ckpt"], row["ckpt"]["sha256"])
    model = trainer.keras_model(eff.model_builder, state["configs"][best], blob)
    val_rows = load_raw_split(st.url("data"), "val", meta)
    metric = eff.train.metric
    challenger = _metric_of(model, Encoding.from_meta(meta), val_rows, eff.metric_key)
    tracker = _tracker(eff)
    parent = state["mlflow"].get("parent")
    decision = {"model_id": best, "metric": metric, "challenger": challenger, "champion": None}
    current = tracker.champion(eff.name)
    unusable = None
    if current is not None:
        try:
            old = tracker.load_raw_rows_model(current["model_uri"])
            decision["champion"] = _metric_of(old.keras_model, old.encoding, val_rows, eff.metric_key)
        except Exception as exc:  # noqa: BLE001 - a champion that cannot score these rows is replaced
            unusable = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            log.warning("champion v%s of %s could not be scored on run %s's validation rows (%s); it will be "
                        "replaced", current["version"], eff.name, run_id, unusable)
    champ = decision["champion"]
    on_rows = "on this run's validation rows"
    if champ is not None and not _better(challenger, champ, eff.train.direction):
        decision.update(promoted=False, version=current["version"], replaced=None,
                        reason=f"not promoted: challenger {metric} {challenger:.6g} does not beat "
                               f"{champ:.6g} of v{current['version']} {on_rows}")
    else:
        if current is None:
            reason = f"promoted: no champion yet ({metric} {challenger:.6g} {on_rows})"
        elif champ is None:
            reason = (f"promoted: {metric} {challenger:.6g}; champion v{current['version']} could not be scored "
                      f"{on_rows} ({unusable})")
        else:
            sign = "<" if eff.train.direction == "min" else ">"
            reason = f"promoted: {metric} {challenger:.6g} {sign} {champ:.6g} of v{current['version']} {on_rows}"
        child = (state["mlflow"].get("children") or {}).get(best)
        uri = tracker.log_raw_rows_model(child, model, meta, val_rows.head(5))
        replaced = current["version"] if current is not None else None
        version = tracker.register_champion(eff.name, uri, metric, challenger,
                                            {"cerebro.run_id": run_id, "cerebro.model_id": best},
                                            replaced=replaced, reason=reason)
        decision.update(promoted=True, version=version, replaced=replaced, reason=reason)
    if decision["promoted"]:
        log.info("registered %s v%s as champion: %s", eff.name, decision["version"], decision["reason"])
    else:
        log.info("champion %s v%s kept: %s", eff.name, decision["version"], decision["reason"])
    tracker.record_decision(parent, decision)
    tracker.end_study(parent, "FINISHED")
    state["registered"] = decision
    _save_state(spec, run_id, state)
    return decision


def _metric_of(model, encoding, rows, key: str) -> float:
    """The compiled metric `key` of `model` on raw `rows` (features and label), encoded by `encoding`."""
    from .serving import keras_inputs

    if encoding.label not in rows.columns:
        raise DataError(encoding.label, "the validation rows have no label column", "score rows with their label")
    x = keras_inputs(model, encoding.encode(rows), encoding.feature_spans)
    res = model.evaluate(x, encoding.encode_labels(rows[encoding.label]), batch_size=8192, verbose=0,
                         return_dict=True)
    if key not in res:
        raise DataError("train.metric", f"model reports {sorted(res)}, not {key!r}", "pick one of those")
    return float(res[key])


def _better(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "min" else a > b


def _json_line(r: dict) -> str:
    import json
    return json.dumps(r, sort_keys=True, default=str) + "\n"


# --------------------------------------------------------------------------------------------- whole run

def run(spec: StudySpec, run_id: str | None = None, overrides: dict | None = None, spark=None,
        launcher=None, progress=None, register_model: bool = True, replay_of: dict | None = None) -> dict:
    """All steps in one process with one Spark session (the CLI path)."""
    from .plan import build_plan

    run_id = run_id or new_run_id()
    state = prepare(spec, run_id, spark=spark, overrides=overrides, replay_of=replay_of)
    eff = effective_spec(spec, state)
    spark = spark if launcher is not None else _spark(eff, spark)
    result = {"run_id": run_id}
    for step in build_plan(spec):
        if step.kind == "partition":
            partition(spec, run_id, spark)
        elif step.kind == "epoch":
            if progress:
                progress.start_epoch(step.epoch)
            run_epoch(spec, run_id, step.epoch, spark=spark, launcher=launcher,
                      on_record=progress.record if progress else None)
        elif step.kind == "select":
            if eff.search.method == "tpe":  # tell, ask and train the later batches (CLI path only)
                from .tpe import run_remaining_batches
                run_remaining_batches(spec, run_id, spark=spark, launcher=launcher, progress=progress)
            result["leaderboard"] = select(spec, run_id)
        elif step.kind == "register" and register_model:
            result["registered"] = register(spec, run_id)
    return result


def latest_run(spec: StudySpec, unfinished: bool = False) -> str | None:
    base = Store(spec.runtime.store).sub(spec.name, "runs")
    runs = []
    for rid in base.listdir():
        if base.exists(f"{rid}/{STATE}"):
            s = base.read_json(f"{rid}/{STATE}")
            if unfinished and s.get("registered"):
                continue
            runs.append((s.get("created", ""), s["run_id"]))
    return max(runs)[1] if runs else None


__all__ = ["validate", "prepare", "partition", "run_epoch", "select", "register", "run", "latest_run",
           "best_value", "load_state", "hop_records"]
