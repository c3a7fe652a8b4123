"""A whole study run without Spark, TensorFlow or MLflow, for tests of the run's steps and state.

The data steps return a small meta, the builder check is skipped, MLflow is a recorder, and the workers are
fake: a 'model' is the list of partitions it trained on, and its validation loss is a function of its params
(so TPE has results to learn from) and of how much it trained. A config with learning_rate > FAIL_ABOVE fails
on its first hop (a NaN loss)."""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from cerebro_ops import study
from .fake_workers import fake_launcher

FAIL_ABOVE = 0.05


def val_loss(params: dict, trained: int) -> float:
    return ((math.log10(params["learning_rate"]) + 2) ** 2 + (params["units"] - 10) ** 2 / 50
            + 1 / (1 + trained))


def scoring_launcher(workers: int, seen: list | None = None):
    """Fake workers; `seen` gets (builder, model_id, kind, partition) of every unit handed out."""
    return fake_launcher(workers, seen=seen, fails=lambda msg: msg["params"]["learning_rate"] > FAIL_ABOVE,
                         eval_loss=lambda params, trained: val_loss(params, len(trained)))


class RecordingTracker:
    """MLflow stand-in: child runs are '<model_id>-run'; every call is recorded in `calls`."""

    def __init__(self, calls: list):
        self.calls = calls

    def start_study(self, spec, run_id, tags):
        self.calls.append(("start_study", run_id))
        return "parent-run"

    def start_config(self, parent, model_id, params):
        self.calls.append(("start_config", model_id))
        return f"{model_id}-run"

    def end_config(self, child, status, tags=None):
        self.calls.append(("end_config", child, status, (tags or {}).get("cerebro.status")))

    def __getattr__(self, name):  # log_epoch, log_study, ...: recorded, nothing else
        return lambda *a, **k: self.calls.append((name,))


def go_offline(monkeypatch) -> dict:
    """Patch the Spark, TensorFlow and MLflow parts out of `study`; returns what the fakes record."""
    import cerebro_ops.spark.prepare as prep

    seen: dict = {"tracker": [], "partition_workers": []}
    monkeypatch.setattr(study, "check_model_builder", lambda spec, params: None)
    monkeypatch.setattr(study, "spark_session", lambda spec, spark: None)
    monkeypatch.setattr(study, "open_tracker", lambda spec: RecordingTracker(seen["tracker"]))
    # as prepare does: the data written into the workers' partitions
    def prepare(spark, spec, store, on_checked=lambda: None):
        on_checked()
        seen["partition_workers"].append(spec.train.workers)
        return {"rows": 20, "workers": spec.train.workers}

    monkeypatch.setattr(prep, "prepare", prepare)

    def partition(spark, spec, store, workers):
        seen["partition_workers"].append(workers)
        return {"rows": 20, "workers": workers}

    monkeypatch.setattr(prep, "partition", partition)
    return seen


def raw_spec(tmp: Path, method: str = "tpe", num_configs: int = 8, batch_size: int = 3, epochs: int = 3,
             workers: int = 2, pruning: str = "none", builder: str = "m:f") -> dict:
    csv = tmp / "d.csv"
    if not csv.exists():
        csv.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    space = {"learning_rate": {"loguniform": [1e-4, 1e-1]}, "units": {"int": [1, 16]}}
    if method == "grid":
        space = {"learning_rate": [0.001, 0.01], "units": [4, 12]}
    return {"name": "t", "seed": 5, "data": {"source": str(csv), "label": "y", "numeric": ["a"]},
            "model": {"builder": builder},
            "search": {"method": method, "num_configs": num_configs, "batch_size": batch_size, "space": space},
            "train": {"epochs": epochs, "workers": workers, "metric": "val_loss"},
            "pruning": {"method": pruning},
            "runtime": {"store": str(tmp / "store"), "tracking_uri": ""}}


def write_spec(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def walk_steps(spec, run_id: str, launcher, plan_spec=None, until=None, overrides=None) -> list:
    """The run's steps one by one, as the Airflow DAG runs them (each its own call); `until(step)` stops
    before a step. Returns the results of the epoch and next_batch steps."""
    from cerebro_ops.core.plan import build_plan

    out = []
    for step in build_plan(plan_spec or spec):
        if until is not None and until(step):
            break
        if step.kind == "prepare":
            study.prepare(spec, run_id, overrides=overrides)
        elif step.kind == "partition":
            study.partition(spec, run_id)
        elif step.kind == "epoch":
            out.append(study.run_epoch(spec, run_id, step.epoch, step.batch, launcher=launcher))
        elif step.kind == "next_batch":
            out.append(study.next_batch(spec, run_id, step.batch))
        elif step.kind == "select":
            study.select(spec, run_id)
    return out
