"""A stand-in for ``cerebro_ops.study`` that records its calls and trains nothing.

Like the real study, a run's shape comes from the trigger's overrides that prepare received: an epoch beyond
the run's epochs or batches, and a next_batch after the run's last batch, return ``{"skipped": ...}``.
"""
from __future__ import annotations

import sys
import types

from cerebro_ops.core.search import searcher_for


def make(calls: list) -> types.ModuleType:
    """A module with the study functions the operators call; each call is appended to `calls`."""
    runs: dict[str, dict] = {}
    mod = types.ModuleType("cerebro_ops.study")

    def prepare(spec, run_id, spark=None, overrides=None, tags=None):
        calls.append(("prepare", run_id, spark, overrides, tags))
        eff = spec.with_overrides(**(overrides or {}))
        batches = searcher_for(eff).num_batches
        runs[run_id] = {"epochs": eff.train.epochs, "batches": batches, "partitioned": True}
        return {"run_id": run_id, "configs": {"m1": {}}, "big": list(range(1000))}

    def needs_partitioning(spec, run_id):  # a run this fake did not prepare: as if an earlier version had
        return not runs.get(run_id, {}).get("partitioned")

    def partition(spec, run_id, spark=None):
        calls.append(("partition", run_id, spark))
        return {"partitioned": True}

    def epoch_needs_training(spec, run_id, epoch, batch=0):
        run = runs.get(run_id, {"epochs": spec.train.epochs, "batches": 1})
        return batch < run["batches"] and epoch <= run["epochs"]

    def run_epoch(spec, run_id, epoch, batch=0, spark=None, launcher=None, on_record=None):
        calls.append(("epoch", run_id, batch, epoch, spark))
        if not epoch_needs_training(spec, run_id, epoch, batch):
            return {"epoch": epoch, "batch": batch, "skipped": "beyond run epochs or batches"}
        return {"epoch": epoch, "batch": batch, "wall_s": 1.5, "live_models": 2, "failed": ["m3"],
                "blob": object()}

    def next_batch(spec, run_id, batch):
        calls.append(("next_batch", run_id, batch))
        if batch + 1 >= runs[run_id]["batches"]:
            return {"batch": batch, "skipped": "no later batch"}
        return {"batch": batch, "next_batch": batch + 1, "models": ["m2", "m3"]}

    def select(spec, run_id):
        calls.append(("select", run_id))
        return [{"model_id": "m1", "rank": 1}]

    def register(spec, run_id):
        calls.append(("register", run_id))
        return {"model_id": "m1", "promoted": True}

    for f in (prepare, needs_partitioning, partition, epoch_needs_training, run_epoch, next_batch, select, register):
        setattr(mod, f.__name__, f)
    return mod


def install(calls: list, monkeypatch=None) -> types.ModuleType:
    """Put the fake in place of cerebro_ops.study (undone after the test when `monkeypatch` is given)."""
    import cerebro_ops

    mod = make(calls)
    if monkeypatch is None:
        sys.modules["cerebro_ops.study"] = mod
        cerebro_ops.study = mod
    else:
        monkeypatch.setitem(sys.modules, "cerebro_ops.study", mod)
        monkeypatch.setattr(cerebro_ops, "study", mod, raising=False)
    return mod
