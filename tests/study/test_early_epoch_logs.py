"""An epoch logs each config to MLflow as soon as its result is final, on a background thread, once; an
epoch step run on its own (an Airflow task) waits for that logging before it saves the run state."""
from __future__ import annotations

import threading

from cerebro_ops import study
from cerebro_ops.core.spec import load_spec
from cerebro_ops.mlflow.child_runs import EarlyEpochLogs
from tests.offline_study import RecordingTracker, go_offline, raw_spec, scoring_launcher, write_spec


def _tracker(monkeypatch, spec, calls: list):
    class Tracker(RecordingTracker):
        def log_epoch_result(self, child, epoch, metrics, best=None, ckpt=None):
            saved = study.load_run(spec, "r").epochs_done  # what the run state said while this was logged
            calls.append({"child": child, "epoch": epoch, "metrics": metrics, "ckpt": ckpt,
                          "thread": threading.current_thread().name, "state_epochs_done": saved})

    monkeypatch.setattr(study, "open_tracker", lambda s: Tracker([]))


def test_an_epoch_step_logs_every_config_once_before_it_saves_the_state(tmp_path, monkeypatch):
    go_offline(monkeypatch)
    spec = load_spec(write_spec(tmp_path / "s.yaml", raw_spec(tmp_path, method="grid", epochs=2)))
    study.prepare(spec, "r")
    study.partition(spec, "r")
    calls: list = []
    _tracker(monkeypatch, spec, calls)
    early: list = []
    real_logged = EarlyEpochLogs.logged
    monkeypatch.setattr(EarlyEpochLogs, "logged", lambda self, *a: early.append(real_logged(self, *a)) or early[-1])
    study.run_epoch(spec, "r", 1, launcher=scoring_launcher(2))
    state = study.load_run(spec, "r")
    assert state.epochs_done == 1
    assert early == [True] * len(state.models)  # the epoch's end found every config logged already
    assert sorted(c["child"] for c in calls) == sorted(f"{m}-run" for m in state.models)  # each once
    for c in calls:
        rec = state.models[c["child"].removesuffix("-run")]
        assert c["epoch"] == 1 and c["metrics"] == rec.history[-1].metrics and c["ckpt"] is not None
        assert c["thread"] == "mlflow-logging" and c["state_epochs_done"] == 0
    study.run_epoch(spec, "r", 2, launcher=scoring_launcher(2))
    assert sorted((c["child"], c["epoch"]) for c in calls) == sorted(
        (f"{m}-run", e) for m in state.models for e in (1, 2))


def test_a_whole_run_logs_each_config_epoch_once(tmp_path, monkeypatch):
    go_offline(monkeypatch)
    spec = load_spec(write_spec(tmp_path / "s.yaml", raw_spec(tmp_path, method="grid", epochs=3)))
    calls: list = []
    _tracker(monkeypatch, spec, calls)
    study.run(spec, run_id="r", launcher=scoring_launcher(2), register_model=False)
    state = study.load_run(spec, "r")
    logged = sorted((c["child"], c["epoch"]) for c in calls)
    assert logged == sorted((f"{m}-run", e) for m in state.models for e in (1, 2, 3))
    assert all(c["metrics"] == state.models[c["child"].removesuffix("-run")].history[c["epoch"] - 1].metrics
               for c in calls)
