"""The MLflow child run of each config, over its life in a study run.

Started with the config (prepare, or next_batch for a later TPE batch); after every epoch it trains, its
metrics, best epoch so far and checkpoint, logged as soon as its epoch's result is final (EarlyEpochLogs);
ended when the config fails, is pruned or finishes its batch, with its status as a tag too. Driver side, on
a background thread: the workers' hop path never waits for MLflow, and tracking never stops training (the
Tracker's calls do not raise).
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import replace

from cerebro_ops.core.leaderboard import best_value
from cerebro_ops.core.run_state import EpochEntry, ModelRecord, ModelStatus, RunState
from cerebro_ops.core.spec import StudySpec

log = logging.getLogger("cerebro_ops.study")

# How a config's MLflow child run ends: MLflow's run statuses are its own vocabulary, not ModelStatus.
MLFLOW_END_STATUS = {ModelStatus.FINISHED: "FINISHED", ModelStatus.FAILED: "FAILED", ModelStatus.PRUNED: "KILLED"}


class TrackingQueue:
    """MLflow calls run in order on one background thread, so training goes on while metrics and checkpoints
    are logged: a CLI run keeps one across its steps, an Airflow epoch task has its own for its epoch.
    `drain()` waits until every submitted call has run: before a step that reads or writes the same runs."""

    def __init__(self):
        self._calls: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="mlflow-logging", daemon=True)
        self._thread.start()

    def submit(self, call: Callable[[], None]) -> None:
        self._calls.put(call)

    def drain(self) -> None:
        self._calls.join()

    def close(self) -> None:
        self.drain()
        self._calls.put(None)
        self._thread.join()

    def _work(self) -> None:
        while True:
            call = self._calls.get()
            try:
                if call is None:
                    return
                call()
            except Exception:  # noqa: BLE001 - tracking never stops training (the Tracker's calls do not raise)
                log.warning("background MLflow logging failed", exc_info=True)
            finally:
                self._calls.task_done()


class ChildRuns:
    """The child runs of one study run, through `tracker` (a tracking.Tracker); through `background` (a
    TrackingQueue) the calls run on its thread, in the order they were made, with what they log taken now."""

    def __init__(self, tracker, parent: str | None, background: TrackingQueue | None = None):
        self.tracker = tracker
        self.parent = parent
        self.background = background

    def _call(self, fn: Callable, *args) -> None:
        if self.background is None:
            fn(*args)
        else:
            self.background.submit(lambda: fn(*args))

    def start(self, rec: ModelRecord) -> None:
        """Open the config's child run (none when the parent run could not be started)."""
        if self.parent:
            rec.mlflow_run = self.tracker.start_config(self.parent, rec.model_id, rec.params)

    def epoch_done(self, rec: ModelRecord, spec: StudySpec, store, epoch: int) -> None:
        """The epoch's metrics (the config's last history entry), its best epoch so far and its checkpoint."""
        value, entry = best_value(rec.history, spec.train.metric, spec.train.direction)
        # the record moves on with the next epoch: what is logged is taken now
        logged = {"child": rec.mlflow_run, "model_id": rec.model_id, "epoch": epoch,
                  "metrics": dict(rec.history[-1].metrics), "ckpt": dict(rec.ckpt) if rec.ckpt else None,
                  "best": (spec.train.metric, value, entry.epoch) if value is not None else None}
        self._call(self._log_epoch, logged, store)

    def _log_epoch(self, e: dict, store) -> None:
        child, ckpt, logged = e["child"], e["ckpt"], None
        if child and ckpt:
            try:
                logged = (store.read_blob(ckpt["ckpt"], ckpt["sha256"]), ckpt["sha256"])
            except Exception as exc:  # noqa: BLE001 - tracking never stops training; the next epoch repairs a bad file
                log.warning("checkpoint %s of %s not logged to MLflow: %s", ckpt["ckpt"], e["model_id"], exc)
        self.tracker.log_epoch_result(child, e["epoch"], e["metrics"], e["best"], logged)

    def end(self, rec: ModelRecord, tags: dict | None = None) -> None:
        """End the config's child run with its status (as a tag too)."""
        self._call(self.tracker.end_config, rec.mlflow_run, MLFLOW_END_STATUS[rec.status],
                   {"cerebro.status": rec.status.value, **(tags or {})})

    def finish_live(self, state: RunState) -> None:
        """The live models have trained every epoch of their batch: they are finished."""
        for m in state.live_models():
            rec = state.models[m]
            rec.status = ModelStatus.FINISHED
            self.end(rec)


def epoch_metrics(result) -> dict:
    """A model's epoch result (mop.epoch.ModelResult) as the metrics of its history entry and MLflow run."""
    return {"train_loss": result.train_loss, **{f"val_{k}": v for k, v in result.val.items()}}


class EarlyEpochLogs:
    """An epoch's per-config MLflow logging, started as soon as a config's result is final.

    The hop server calls `model_done` (from its thread) when a config's last unit of the epoch is in, while
    the others still train; its metrics, best epoch and checkpoint go to the background queue then, as
    ChildRuns.epoch_done would log them after the epoch. The epoch's end logs only what was not logged
    early (`logged`). An Airflow epoch task so ends with its last configs' logging, not with every one's."""

    def __init__(self, children: ChildRuns, state: RunState, spec: StudySpec, store, epoch: int):
        self.children, self.state, self.spec, self.store, self.epoch = children, state, spec, store, epoch
        self._logged: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def model_done(self, result) -> None:
        if result.status is ModelStatus.FAILED or self.children.background is None:
            return
        rec = self.state.models[result.model_id]
        metrics = epoch_metrics(result)
        # the record itself changes only after the epoch, on the caller's thread: log a view of it
        view = replace(rec, history=[*rec.history, EpochEntry(self.epoch, metrics, result.ckpt)], ckpt=result.ckpt)
        self.children.epoch_done(view, self.spec, self.store, self.epoch)
        with self._lock:
            self._logged[result.model_id] = (metrics, result.ckpt)

    def logged(self, model_id: str, metrics: dict, ckpt: dict | None) -> bool:
        """Whether this very result of `model_id` was logged early."""
        with self._lock:
            return self._logged.get(model_id) == (metrics, ckpt)
