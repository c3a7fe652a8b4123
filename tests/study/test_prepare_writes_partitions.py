"""prepare writes the workers' partitions: the run is prepared and partitioned in one step, the plan's
partition step has nothing to do, and a failure in either half leaves no run state behind."""
from __future__ import annotations

import threading

import pytest

import cerebro_ops.spark.prepare as prep
from cerebro_ops import study
from cerebro_ops.core.errors import DataError, SpecError
from cerebro_ops.core.spec import load_spec
from tests.offline_study import RecordingTracker, go_offline, raw_spec, scoring_launcher, write_spec


@pytest.fixture
def offline(monkeypatch):
    return go_offline(monkeypatch)


@pytest.fixture
def spec(tmp_path, offline):
    return load_spec(write_spec(tmp_path / "s.yaml", raw_spec(tmp_path, method="grid", epochs=1)))


def test_prepare_leaves_the_run_partitioned_and_the_partition_step_idle(spec, offline):
    result = study.run(spec, run_id="r", launcher=scoring_launcher(2), register_model=False)
    assert offline["partition_workers"] == [2]  # written once, by prepare
    state = study.load_run(spec, "r")
    assert state.prepared and state.partitioned
    assert not study.needs_partitioning(spec, "r")
    assert state.mlflow_parent == "parent-run"
    assert {m.mlflow_run for m in state.models.values()} == {f"{m}-run" for m in state.models}
    assert len(result["leaderboard"]) == len(state.models)


def test_a_run_prepared_without_partitions_is_partitioned_by_its_step(spec, offline, monkeypatch):
    """A run prepared by an earlier version (encoded rows not yet split): the partition step splits them."""
    monkeypatch.setattr(prep, "prepare", lambda spark, spec, store, on_checked: {"rows": 20})
    state = study.prepare(spec, "r")
    assert state.prepared and not state.partitioned
    assert study.needs_partitioning(spec, "r")
    state = study.partition(spec, "r")
    assert state.partitioned and state.meta["workers"] == 2
    assert offline["partition_workers"] == [2]
    assert not study.needs_partitioning(spec, "r")


class OpeningTracker(RecordingTracker):
    """Records when prepare asks it to open MLflow's store (Tracker.warm_up)."""

    def __init__(self, calls):
        super().__init__(calls)
        self.opened = threading.Event()

    def warm_up(self):
        self.opened.set()


def test_mlflow_opens_beside_the_writes_only_for_checked_data_and_builder(spec, monkeypatch):
    trackers = []
    monkeypatch.setattr(study, "open_tracker", lambda spec: trackers.append(OpeningTracker([])) or trackers[-1])
    study.prepare(spec, "good")
    assert trackers[0].opened.wait(5)
    assert trackers[0].calls[0][0] == "start_study"  # the same tracker then starts the runs

    def broken(spec, params):
        raise SpecError("model.builder", "broken on purpose", "fix it")

    monkeypatch.setattr(study, "check_model_builder", broken)
    with pytest.raises(SpecError, match="broken on purpose"):
        study.prepare(spec, "bad-builder")
    assert not trackers[1].opened.wait(0.5)  # no MLflow database for a study that never starts


def test_an_mlflow_error_saves_no_run(spec, monkeypatch):
    class Down(RecordingTracker):
        def start_study(self, spec, run_id, tags):
            raise ConnectionError("tracking server unreachable")

    monkeypatch.setattr(study, "open_tracker", lambda spec: Down([]))
    with pytest.raises(ConnectionError, match="unreachable"):
        study.prepare(spec, "r")
    assert not study.repository(spec, "r").exists()


def test_data_prepared_for_other_workers_is_refused_by_name(tmp_path):
    from cerebro_ops.store import Store

    data = Store(tmp_path.as_uri()).sub("data")
    data.write_json("meta.json", {"rows": {"train": 8, "val": 2}, "workers": 2})
    assert prep.partition(None, None, data, 2)["workers"] == 2  # prepare wrote these: no Spark job
    with pytest.raises(DataError, match="train.workers.*prepared for 2"):
        prep.partition(None, None, data, 3)


def test_run_warms_the_python_workers_of_a_session_it_makes(spec, offline, monkeypatch):
    """study.run's own session starts its Python workers (TensorFlow's import) while prepare runs, as the CLI's
    does; a session or launcher passed in is left as it is, and prepare alone (an Airflow task) warms nothing."""
    import cerebro_ops.spark.session as session

    warmed = []
    monkeypatch.setattr(session, "warm_up_workers", warmed.append)
    study.prepare(spec, "r", warm_workers=True)
    study.prepare(spec, "r2")
    assert warmed == [None]  # the offline session of go_offline
    asked = []

    def stop(*args, **kwargs):
        asked.append(kwargs["warm_workers"])
        raise RuntimeError("prepare reached")
    monkeypatch.setattr(study, "prepare", stop)
    for injected in ({}, {"launcher": scoring_launcher(2)}, {"spark": object()}):
        with pytest.raises(RuntimeError, match="prepare reached"):
            study.run(spec, **injected)
    assert asked == [True, False, False]


@pytest.mark.parametrize("driver_idle", [True, False])
def test_mlflow_package_index_is_built_only_while_the_driver_idles(monkeypatch, driver_idle):
    """On Spark Connect the server runs prepare and the driver idles: MLflow's index of the installed packages
    (for the model the register step logs) is built then; beside a classic session's py4j calls it is not."""
    indexed, opened = threading.Event(), threading.Event()
    monkeypatch.setattr(study, "index_installed_packages", indexed.set)

    class Passed:
        def error(self):
            return None

    class Tracker:
        def warm_up(self):
            thread = threading.Thread(target=opened.set)
            thread.start()
            return thread

    study._open_tracking_when_built(Passed(), Tracker(), driver_idle)
    assert opened.wait(5)
    assert indexed.wait(2 if driver_idle else 0.5) is driver_idle
