"""builder_check.py: the builder check on a thread, interrupting the Spark jobs of prepare when it fails; and
study.prepare's use of it (offline: no Spark, TensorFlow or MLflow)."""
from __future__ import annotations

import threading
import time

import pytest

from cerebro_ops import study
from cerebro_ops.builder_check import BuilderCheck
from cerebro_ops.core.errors import DataError, SpecError
from cerebro_ops.core.spec import load_spec

from .offline_study import go_offline, raw_spec, write_spec

BROKEN = SpecError("model.builder", "the builder raised ValueError: no", "fix the builder")


class FakeSession:
    """A Spark Connect session's tag API (spark/job_tags.py tells one by its module): a 'job' started with job()
    waits until its tag is interrupted."""

    __module__ = "pyspark.sql.connect.session"

    def __init__(self):
        self.tags: list[str] = []
        self.interrupts: list[str] = []
        self.interrupted = threading.Event()

    def addTag(self, tag):
        self.tags.append(tag)

    def removeTag(self, tag):
        self.tags.remove(tag)

    def interruptTag(self, tag):
        if tag in self.tags:
            self.interrupts.append(tag)
            self.interrupted.set()

    def job(self, timeout: float = 10.0) -> None:
        """Runs until interrupted (raises, as Spark does) or until `timeout` (returns)."""
        self.interrupted.clear()
        if self.interrupted.wait(timeout):
            raise RuntimeError("OPERATION_CANCELED")


def failing_after(gate: threading.Event, error: Exception = BROKEN):
    def check():
        gate.wait(10)
        raise error
    return check


def test_a_failed_check_interrupts_the_running_job_and_is_reported():
    session, gate = FakeSession(), threading.Event()
    check = BuilderCheck(failing_after(gate))
    t0 = time.time()
    with pytest.raises(RuntimeError, match="OPERATION_CANCELED"):
        with check.interrupting(session, "prep-r1"):
            gate.set()  # the check fails while the job runs
            session.job()
    assert time.time() - t0 < 5  # not the job's 10 s
    assert check.error() is BROKEN
    assert session.interrupts[0] == "prep-r1" and session.tags == []  # the tag is removed on the way out


def test_jobs_started_after_the_failure_are_interrupted_too():
    """prepare runs several jobs: one that starts between two interrupts is caught by the next one."""
    session, gate = FakeSession(), threading.Event()
    check = BuilderCheck(failing_after(gate))
    caught = 0
    with check.interrupting(session, "prep-r2"):
        gate.set()
        for _ in range(3):
            try:
                session.job()
            except RuntimeError:
                caught += 1
    assert caught == 3 and len(session.interrupts) >= 3


def test_a_check_that_failed_before_the_data_work_stops_it_from_starting():
    session = FakeSession()
    check = BuilderCheck(_raise(BROKEN))
    assert check.error() is BROKEN
    started = []
    with pytest.raises(SpecError):
        with check.interrupting(session, "prep-r3"):
            started.append(True)
    assert started == [] and session.tags == []


def test_a_passing_check_interrupts_nothing():
    session = FakeSession()
    check = BuilderCheck(lambda: None)
    with check.interrupting(session, "prep-r4"):
        assert session.tags == ["prep-r4"]
        session.job(timeout=0.3)  # returns: nothing interrupts it
    assert check.error() is None and session.interrupts == [] and session.tags == []


def test_a_session_without_tags_runs_its_work_to_the_end_then_gets_the_error():
    gate = threading.Event()
    check = BuilderCheck(failing_after(gate))
    finished = []
    with check.interrupting(object(), "prep-r5"):  # no tag API (a test double, an old client)
        gate.set()
        check.error()  # the check has failed meanwhile
        finished.append(True)  # nothing could interrupt the work
    assert finished == [True] and check.error() is BROKEN
    with pytest.raises(SpecError):  # the next block does not start
        with check.interrupting(object(), "prep-r6"):
            finished.append(False)
    assert finished == [True]


def _raise(error):
    def check():
        raise error
    return check


# --------------------------------------------------------------------------------------------- study.prepare

def _offline_spec(tmp_path, monkeypatch):
    """The offline study, its Spark session a Spark Connect one (where prepare overlaps the check)."""
    seen = go_offline(monkeypatch)
    monkeypatch.setattr(study, "spark_session", lambda spec, spark: FakeSession())
    return load_spec(str(write_spec(tmp_path / "s.yaml", raw_spec(tmp_path, method="grid")))), seen


def test_prepare_interrupts_its_data_work_when_the_builder_is_broken(tmp_path, monkeypatch):
    """The data work is under way when the check fails: it is interrupted, its files are deleted, no MLflow run
    is opened, and the builder's error is raised."""
    import cerebro_ops.spark.prepare as prep

    spec, seen = _offline_spec(tmp_path, monkeypatch)
    session, gate = FakeSession(), threading.Event()
    monkeypatch.setattr(study, "spark_session", lambda spec, spark: session)
    monkeypatch.setattr(study, "check_model_builder", lambda spec, params: failing_after(gate)())

    def data_work(spark, spec, data, on_checked=None):
        data.write_json("meta.json", {"rows": 20})  # something written before the interrupt
        gate.set()
        spark.job()
        return {"rows": 20}

    monkeypatch.setattr(prep, "prepare", data_work)
    t0 = time.time()
    with pytest.raises(SpecError, match="the builder raised"):
        study.prepare(spec, "r1")
    assert time.time() - t0 < 5
    assert len(session.interrupts) == 1 and session.interrupts[0].startswith("cerebro-prepare-")
    assert not any(p.is_file() for p in (tmp_path / "store").rglob("*"))
    assert seen["tracker"] == []


def test_on_classic_spark_prepare_checks_the_builder_before_its_data_work(tmp_path, monkeypatch):
    """A classic session's prepare is driven by py4j calls from this thread: it does not overlap the check."""
    import cerebro_ops.spark.prepare as prep

    spec, seen = _offline_spec(tmp_path, monkeypatch)
    classic = type("SparkSession", (), {"sparkContext": None})()  # a classic session's module: not Connect
    order = []

    def slow_check(spec, params):
        time.sleep(0.2)
        order.append("check")

    def data_work(spark, spec, data, on_checked=None):
        order.append("data")
        return {"rows": 20}

    monkeypatch.setattr(study, "spark_session", lambda spec, spark: classic)
    monkeypatch.setattr(study, "check_model_builder", slow_check)
    monkeypatch.setattr(prep, "prepare", data_work)
    study.prepare(spec, "c1")
    assert order == ["check", "data"]
    order.clear()
    monkeypatch.setattr(study, "check_model_builder", _raise_with_delay)
    with pytest.raises(SpecError):
        study.prepare(spec, "c2")
    assert order == [] and not any(p.is_file() for p in (tmp_path / "store" / "t" / "runs" / "c2").rglob("*"))


def _raise_with_delay(spec, params):
    time.sleep(0.2)
    raise BROKEN


def test_prepare_reports_the_builder_error_when_the_data_is_bad_too(tmp_path, monkeypatch):
    import cerebro_ops.spark.prepare as prep

    spec, seen = _offline_spec(tmp_path, monkeypatch)
    gate = threading.Event()
    monkeypatch.setattr(study, "check_model_builder", lambda spec, params: failing_after(gate)())

    def bad_data(spark, spec, data, on_checked=None):
        data.write_json("meta.json", {"rows": 20})
        gate.set()
        raise DataError("data.label", "the label has no values", "pick another label")

    monkeypatch.setattr(prep, "prepare", bad_data)
    with pytest.raises(SpecError, match="the builder raised"):
        study.prepare(spec, "r2")
    assert not any(p.is_file() for p in (tmp_path / "store").rglob("*")) and seen["tracker"] == []


def test_prepare_waits_for_a_slow_check_that_fails_after_the_data_is_written(tmp_path, monkeypatch):
    """The data work finishes first; the check then fails: the written data goes, the builder's error comes."""
    import cerebro_ops.spark.prepare as prep

    spec, seen = _offline_spec(tmp_path, monkeypatch)

    def slow_broken(spec, params):
        time.sleep(0.3)
        raise BROKEN

    monkeypatch.setattr(study, "check_model_builder", slow_broken)

    def data_work(spark, spec, data, on_checked=None):
        data.write_json("meta.json", {"rows": 20})
        return {"rows": 20}

    monkeypatch.setattr(prep, "prepare", data_work)
    with pytest.raises(SpecError):
        study.prepare(spec, "r3")
    assert not any(p.is_file() for p in (tmp_path / "store").rglob("*")) and seen["tracker"] == []


def test_prepare_with_a_good_builder_prepares_and_checks_once(tmp_path, monkeypatch):
    spec, seen = _offline_spec(tmp_path, monkeypatch)
    calls = []
    monkeypatch.setattr(study, "check_model_builder", lambda spec, params: calls.append(dict(params)))
    state = study.prepare(spec, "r4")
    assert state.prepared and calls == [state.models["m000"].params]
    assert ("start_study", "r4") in seen["tracker"]
