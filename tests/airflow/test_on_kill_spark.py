"""on_kill of one run's task cancels that task's Spark jobs only: another run's job in the same Spark
application (a shared Spark Connect session in production) runs to its end. A real local Spark session."""
from __future__ import annotations

import threading
import time
import types

import pytest

pytestmark = [pytest.mark.airflow, pytest.mark.spark]


def slow(seconds: float):
    def body(batches):
        import time as t

        for b in batches:
            t.sleep(seconds)
            yield b
    return body


def test_on_kill_of_one_run_leaves_the_other_runs_job_alive(monkeypatch):
    from cerebro_ops.airflow.operators import CerebroEpochOperator
    from cerebro_ops.spark.session import get_spark

    spark = get_spark("local[4]")
    monkeypatch.setattr("cerebro_ops.spark.session.get_spark", lambda master, app_name=None, **_: spark)
    ops = {run: CerebroEpochOperator(task_id=f"epoch_1_{run}", spec_path="s.yaml", epoch=1) for run in ("a", "b")}
    outcome = {}

    def task(run):
        op = ops[run]
        monkeypatch.setattr(op, "resolve_master", lambda spec: "local[4]")
        s = op.spark(types.SimpleNamespace(name="t1"))  # joins Spark and tags this thread's jobs
        t0 = time.monotonic()
        try:
            n = s.range(0, 2, 1, 2).mapInPandas(slow(12), schema="id long").count()
            outcome[run] = ("finished", n, time.monotonic() - t0)
        except Exception as exc:  # noqa: BLE001 - the cancelled job's error is the point
            outcome[run] = ("cancelled", type(exc).__name__, time.monotonic() - t0)

    threads = {run: threading.Thread(target=task, args=(run,)) for run in ops}
    for t in threads.values():
        t.start()
    # kill only once both jobs run: a fixed sleep raced the job start on a loaded machine
    tracker, deadline = spark.sparkContext.statusTracker(), time.monotonic() + 120
    while len(tracker.getActiveJobsIds()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(tracker.getActiveJobsIds()) == 2, "the two jobs did not start"
    ops["a"].on_kill()
    for t in threads.values():
        t.join(120)
    assert outcome["a"][0] == "cancelled", outcome
    assert outcome["a"][2] < outcome["b"][2], outcome  # a stopped before b's 12-s batches were done
    assert outcome["b"][:2] == ("finished", 2), outcome
