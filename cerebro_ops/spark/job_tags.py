"""Cancel only this task's Spark jobs.

Airflow tasks of different runs can share one Spark application (the Spark Connect server's shared session),
so cancelling every job of the session would kill other runs' epochs too. Each task tags the jobs it starts
(per thread: ``SparkSession.addTag`` on Spark Connect, ``SparkContext.addJobTag`` on classic Spark, where the
session's own tags did not reach the jobs of a DataFrame action in Spark 4.0) and cancels by that tag; the epoch's job,
started from a launcher thread, carries the launcher's own tag and is cancelled through the launchers running
in this process (spark/epoch_job.py).
"""
from __future__ import annotations

import logging
import threading
import uuid
from contextlib import contextmanager

log = logging.getLogger("cerebro_ops.spark")

_lock = threading.Lock()
_tagged: dict[str, list] = {}  # tag -> the sessions it was added to in this process
_launchers: set = set()  # epoch launchers whose job runs now, in this process (each has .cancel())


def new_task_tag() -> str:
    """A Spark job tag for one task (no ',' allowed; unique across the runs sharing a session)."""
    return f"cerebro-task-{uuid.uuid4().hex}"


def is_connect(spark) -> bool:
    """Whether `spark` is a Spark Connect session (else a classic one, driven through py4j)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def add_tag(spark, tag: str) -> None:
    """Tag the jobs this thread starts on ``spark`` from now on."""
    if is_connect(spark):
        spark.addTag(tag)
    else:
        spark.sparkContext.addJobTag(tag)


def remove_tag(spark, tag: str) -> None:
    if is_connect(spark):
        spark.removeTag(tag)
    else:
        spark.sparkContext.removeJobTag(tag)


def interrupt_tag(spark, tag: str) -> None:
    """Cancel the running jobs tagged ``tag`` (from any thread)."""
    if is_connect(spark):
        spark.interruptTag(tag)
    else:
        spark.sparkContext.cancelJobsWithTag(tag)


def tag_jobs(spark, tag: str) -> None:
    """Tag every job this thread starts on ``spark`` from now on; remember the session for cancel_task_jobs."""
    add_tag(spark, tag)
    with _lock:
        sessions = _tagged.setdefault(tag, [])
        if not any(s is spark for s in sessions):
            sessions.append(spark)


def cancel_task_jobs(tag: str) -> int:
    """Interrupt the jobs tagged ``tag`` and the epoch jobs launched in this process; how many cancels were
    sent. Jobs of other tasks sharing the session are left alone."""
    with _lock:
        sessions = list(_tagged.get(tag, ()))
    for spark in sessions:
        interrupt_tag(spark, tag)
    return len(sessions) + cancel_running_launchers()


@contextmanager
def launcher_running(launcher):
    """Register an epoch launcher while its job runs, so that cancel_task_jobs can interrupt it."""
    with _lock:
        _launchers.add(launcher)
    try:
        yield
    finally:
        with _lock:
            _launchers.discard(launcher)


def cancel_running_launchers() -> int:
    """Interrupt the epoch jobs launched in this process (an Airflow task is one process); how many."""
    with _lock:
        launchers = list(_launchers)
    for launcher in launchers:
        launcher.cancel()
    return len(launchers)
