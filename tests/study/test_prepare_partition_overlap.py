"""The CLI's prepare partitions while the MLflow runs are created (study.prepare(partition_too=True)): both in
flight at once, the run saved as after the two steps one after the other, and each failure leaving what it
left before."""
from __future__ import annotations

import threading

import pytest

import cerebro_ops.spark.prepare as prep
from cerebro_ops import study
from cerebro_ops.core.errors import DataError
from cerebro_ops.core.spec import load_spec
from tests.offline_study import RecordingTracker, go_offline, raw_spec, scoring_launcher, write_spec


@pytest.fixture
def spec(tmp_path, monkeypatch):
    go_offline(monkeypatch)
    return load_spec(write_spec(tmp_path / "s.yaml", raw_spec(tmp_path, method="grid", epochs=1)))


def _tracker_and_partition(monkeypatch, partition=None, start_study=None):
    """A tracker and a partition that each wait (up to 10 s) for the other to have started."""
    calls: list = []
    started = {"mlflow": threading.Event(), "partition": threading.Event()}

    class Tracker(RecordingTracker):
        def start_study(self, spec, run_id, tags):
            started["mlflow"].set()
            calls.append(("partition running", started["partition"].wait(10)))
            if start_study is not None:
                start_study()
            return super().start_study(spec, run_id, tags)

    def fake_partition(spark, spec, store, workers):
        started["partition"].set()
        calls.append(("mlflow running", started["mlflow"].wait(10)))
        if partition is not None:
            partition()
        return {"rows": 20, "workers": workers, "counts": {"train": [8, 8], "val": [2, 2]}}

    monkeypatch.setattr(study, "open_tracker", lambda spec: Tracker(calls))
    monkeypatch.setattr(prep, "partition", fake_partition)
    return calls


def test_the_mlflow_runs_are_created_while_the_data_is_partitioned(spec, monkeypatch):
    calls = _tracker_and_partition(monkeypatch)
    result = study.run(spec, run_id="r", launcher=scoring_launcher(2), register_model=False)
    assert ("partition running", True) in calls and ("mlflow running", True) in calls
    assert sum(1 for c in calls if c[0] == "mlflow running") == 1  # the plan's partition step did not redo it
    state = study.load_run(spec, "r")
    assert state.prepared and state.partitioned
    assert state.mlflow_parent == "parent-run"
    assert {m.mlflow_run for m in state.models.values()} == {f"{m}-run" for m in state.models}
    assert state.meta["workers"] == 2 and state.meta["counts"]["train"] == [8, 8]
    assert len(result["leaderboard"]) == len(state.models)


def test_a_failed_partition_leaves_the_run_prepared_and_tracked(spec, monkeypatch):
    def fail():
        raise DataError("train.workers", "cannot partition", "fix it")

    _tracker_and_partition(monkeypatch, partition=fail)
    with pytest.raises(DataError, match="cannot partition"):
        study.prepare(spec, "r", partition_too=True)
    state = study.load_run(spec, "r")
    assert state.prepared and not state.partitioned
    assert state.mlflow_parent == "parent-run"  # resuming reuses these runs and partitions again
    assert "workers" not in state.meta
    monkeypatch.setattr(prep, "partition", lambda spark, spec, store, workers: {"rows": 20, "workers": workers})
    assert study.partition(spec, "r").partitioned


def test_an_mlflow_error_wins_and_saves_no_run(spec, monkeypatch):
    def down():
        raise ConnectionError("tracking server unreachable")

    _tracker_and_partition(monkeypatch, start_study=down)
    with pytest.raises(ConnectionError, match="unreachable"):
        study.prepare(spec, "r", partition_too=True)
    assert not study.repository(spec, "r").exists()  # as when MLflow failed before the partition
