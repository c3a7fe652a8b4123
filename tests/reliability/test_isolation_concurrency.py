"""Failure isolation (1 bad config of 8) and two concurrent runs of one study. Spark prepares the data
once per run; the epochs run on the thread launcher (Spark is not the point here), so this stays fast."""
from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from cerebro_ops import study
from cerebro_ops.mop.epoch import thread_launcher
from cerebro_ops.core.errors import SpecError, StudyFailed
from cerebro_ops.example_data import make_example_data
from cerebro_ops.core.spec import parse_spec

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def spark():
    from cerebro_ops.spark.session import get_spark
    return get_spark("local[2]")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_example_data("dummy", tmp_path_factory.mktemp("data"))


def make_spec(tmp, data, units, name="iso"):
    return parse_spec({
        "name": name, "seed": 0,
        "data": {"source": str(data), "label": "label", "numeric": ["x1", "x2", "x3", "x4"]},
        "model": {"builder": "tests.builders_for_tests:tiny_fails_on_13"},
        "search": {"method": "grid", "space": {"units": units}},
        "train": {"epochs": 1, "workers": 2, "metric": "val_accuracy"},
        "runtime": {"store": (tmp / "store").as_uri(), "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
    })


def child_runs(spec, state):
    import mlflow
    client = mlflow.MlflowClient(spec.runtime.tracking_uri)
    return {m: client.get_run(rid) for m, rid in state["mlflow"]["children"].items()}


def test_one_bad_config_of_eight_fails_alone(tmp_path, data, spark):
    spec = make_spec(tmp_path, data, [2, 3, 4, 5, 6, 7, 8, 13])
    t0 = time.time()
    res = study.run(spec, "iso-1", spark=spark, launcher=thread_launcher(2), register_model=False)
    rows = {r["model_id"]: r for r in res["leaderboard"]}
    failed = [m for m, r in rows.items() if r["status"] == "FAILED"]
    assert len(rows) == 8 and len(failed) == 1
    bad = rows[failed[0]]
    assert bad["params"]["units"] == 13 and "13 units is unlucky" in bad["reason"]
    assert res["leaderboard"][-1]["model_id"] == failed[0]  # failed configs rank last
    assert all(r["status"] == "FINISHED" and r["val_accuracy"] is not None for m, r in rows.items() if m != failed[0])
    runs = child_runs(spec, study.load_state(spec, "iso-1"))
    assert runs[failed[0]].info.status == "FAILED"
    assert "13 units is unlucky" in runs[failed[0]].data.tags["cerebro.failure_reason"]
    assert {r.info.status for m, r in runs.items() if m != failed[0]} == {"FINISHED"}
    print(f"isolation run: {time.time() - t0:.1f} s")


def test_study_fails_only_when_every_config_failed(tmp_path, data, spark):
    spec = make_spec(tmp_path, data, [4, 8])
    spec = dataclasses.replace(spec, model_builder="tests.builders_for_tests:diverges_in_training")
    with pytest.raises(StudyFailed, match="(?i)nan"):
        study.run(spec, "all-bad", spark=spark, launcher=thread_launcher(2), register_model=False)


def test_a_builder_that_cannot_build_fails_before_any_work(tmp_path, data, spark):
    """The builder check fails: no MLflow run, nothing in the store."""
    spec = make_spec(tmp_path, data, [13])
    with pytest.raises(SpecError, match="13 units is unlucky"):
        study.run(spec, "unbuildable", spark=spark, launcher=thread_launcher(2), register_model=False)
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("state.json"))
    assert not (tmp_path / "mlflow.db").exists()


def test_on_classic_spark_a_slow_broken_builder_stops_prepare_before_any_job(tmp_path, data, spark, monkeypatch):
    """A classic session's prepare waits for the builder check (its py4j calls would compete with it for the
    GIL): a check that fails late still fails before any Spark job or file (Spark Connect overlaps the two:
    tests/spark/test_builder_check_connect.py)."""
    import cerebro_ops.spark.prepare as prep

    spec = make_spec(tmp_path, data, [4])
    tracker = spark.sparkContext.statusTracker()
    jobs_during_check, prepared = [], []

    def fails_late(spec, params):
        for _ in range(50):
            jobs_during_check.extend(tracker.getActiveJobsIds())
            time.sleep(0.01)
        raise SpecError("model.builder", "broken on purpose", "fix it")

    monkeypatch.setattr(study, "check_model_builder", fails_late)
    monkeypatch.setattr(prep, "prepare", lambda *args: prepared.append(args))
    with pytest.raises(SpecError, match="broken on purpose"):
        study.prepare(spec, "late", spark=spark)
    assert prepared == [] and jobs_during_check == []
    assert not (tmp_path / "store").exists() or not any(p.is_file() for p in (tmp_path / "store").rglob("*"))
    assert not (tmp_path / "mlflow.db").exists()


def test_two_concurrent_runs_of_one_study(tmp_path, data, spark):
    spec = make_spec(tmp_path, data, [4, 8], name="conc")
    results, errors = {}, []

    def go(run_id):
        try:
            results[run_id] = study.run(spec, run_id, spark=spark, launcher=thread_launcher(2),
                                        register_model=False)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(r,)) for r in ("conc-a", "conc-b")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    states = {r: study.load_state(spec, r) for r in results}
    parents = {s["mlflow"]["parent"] for s in states.values()}
    children = [c for s in states.values() for c in s["mlflow"]["children"].values()]
    assert len(parents) == 2 and len(set(children)) == len(children) == 4
    for r, res in results.items():
        assert {row["status"] for row in res["leaderboard"]} == {"FINISHED"}
        assert (tmp_path / "store" / "conc" / "runs" / r / "leaderboard.json").exists()
    # Metrics are NOT compared: two runs training in threads of one process share Keras' global seed
    # state, so the thread launcher is not bit-reproducible under concurrency (Spark workers are separate
    # processes and are; see test_crash_resume.py for the equality check).
