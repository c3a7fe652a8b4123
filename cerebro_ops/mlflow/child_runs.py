"""The MLflow child run of each config, over its life in a study run.

Started with the config (prepare, or next_batch for a later TPE batch); after every epoch it trains, its
metrics, best epoch so far and checkpoint; ended when the config fails, is pruned or finishes its batch,
with its status as a tag too. Driver side, after the epoch's hops: the workers' hop path never waits for
MLflow, and tracking never stops training (the Tracker's calls do not raise).
"""
from __future__ import annotations

import logging

from cerebro_ops.core.leaderboard import best_value
from cerebro_ops.core.run_state import ModelRecord, ModelStatus, RunState
from cerebro_ops.core.spec import StudySpec

log = logging.getLogger("cerebro_ops.study")

# How a config's MLflow child run ends: MLflow's run statuses are its own vocabulary, not ModelStatus.
MLFLOW_END_STATUS = {ModelStatus.FINISHED: "FINISHED", ModelStatus.FAILED: "FAILED", ModelStatus.PRUNED: "KILLED"}


class ChildRuns:
    """The child runs of one study run, through `tracker` (a tracking.Tracker)."""

    def __init__(self, tracker, parent: str | None):
        self.tracker = tracker
        self.parent = parent

    def start(self, rec: ModelRecord) -> None:
        """Open the config's child run (none when the parent run could not be started)."""
        if self.parent:
            rec.mlflow_run = self.tracker.start_config(self.parent, rec.model_id, rec.params)

    def epoch_done(self, rec: ModelRecord, spec: StudySpec, store, epoch: int) -> None:
        """The epoch's metrics (the config's last history entry), its best epoch so far and its checkpoint."""
        self.tracker.log_epoch(rec.mlflow_run, epoch, rec.history[-1].metrics)
        value, entry = best_value(rec.history, spec.train.metric, spec.train.direction)
        if value is not None:
            self.tracker.log_best(rec.mlflow_run, spec.train.metric, value, entry.epoch, epoch)
        if not rec.mlflow_run or not rec.ckpt:
            return
        try:
            data = store.read_blob(rec.ckpt["ckpt"], rec.ckpt["sha256"])
        except Exception as exc:  # noqa: BLE001 - tracking never stops training; the next epoch repairs a bad file
            log.warning("checkpoint %s of %s not logged to MLflow: %s", rec.ckpt["ckpt"], rec.model_id, exc)
            return
        self.tracker.log_checkpoint(rec.mlflow_run, epoch, data, rec.ckpt["sha256"])

    def end(self, rec: ModelRecord, tags: dict | None = None) -> None:
        """End the config's child run with its status (as a tag too)."""
        self.tracker.end_config(rec.mlflow_run, MLFLOW_END_STATUS[rec.status], {"cerebro.status": rec.status.value,
                                                                                **(tags or {})})

    def finish_live(self, state: RunState) -> None:
        """The live models have trained every epoch of their batch: they are finished."""
        for m in state.live_models():
            rec = state.models[m]
            rec.status = ModelStatus.FINISHED
            self.end(rec)
