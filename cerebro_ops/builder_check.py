"""The model builder check on a thread, overlapping the Spark work of prepare.

Why a thread: the check imports TensorFlow (2-3 s in a new process) and builds and evaluates one model, while
prepare's Spark jobs leave the driver waiting on the JVM or on a Spark Connect server. Run one after the other,
a study's driver pays both; side by side, about the longer of the two.

What stays as before: a broken builder is the error the user sees, also when the data is bad too; the study
leaves nothing behind (prepare deletes the data it wrote, and no MLflow run exists yet); and the error comes
about as soon as the check fails, since the check interrupts the Spark jobs prepare tagged (`interrupting`).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable

log = logging.getLogger("cerebro_ops.builder_check")

RETRY_INTERRUPT_S = 0.1  # a job that starts after an interrupt (between two of prepare's jobs) is interrupted too


class BuilderCheck:
    """`check()` on a daemon thread from construction on; `error()` waits for it and returns what it raised."""

    def __init__(self, check: Callable[[], None]):
        self._error: Exception | None = None
        self._watched: tuple[object, str] | None = None  # (Spark session, tag) while prepare's jobs run
        self._lock = threading.Lock()
        self._done = threading.Event()
        threading.Thread(target=self._run, args=(check,), name="builder-check", daemon=True).start()

    def _run(self, check: Callable[[], None]) -> None:
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - handed to the thread that waits in error()
            with self._lock:  # after this, `interrupting` either sees the error or is seen watching
                self._error = exc
        finally:
            self._done.set()
        while self._error is not None and self._interrupt_watched():
            time.sleep(RETRY_INTERRUPT_S)

    def _interrupt_watched(self) -> bool:
        """Interrupt the watched session's tagged jobs; False once nothing is watched."""
        with self._lock:
            if self._watched is None:
                return False
            tags, tag = self._watched
            try:
                tags.interrupt(tag)
            except Exception as exc:  # noqa: BLE001 - the error still comes, once the jobs end on their own
                log.debug("could not interrupt %s: %s", tag, exc)
                self._watched = None
        return True

    def error(self) -> Exception | None:
        self._done.wait()
        return self._error

    @contextlib.contextmanager
    def interrupting(self, session, tag: str):
        """The Spark jobs this thread starts inside the block carry `tag`; a failed check interrupts them."""
        tags = JobTags.of(session)
        with self._lock:
            if self._error is not None:
                raise self._error
            if tags is not None:  # watched before tagged: the retried interrupt reaches jobs started after a failure
                self._watched = (tags, tag)
        if tags is not None:
            tags.add(tag)
        try:
            yield
        finally:
            if tags is not None:
                with self._lock:
                    self._watched = None
                tags.remove(tag)


class JobTags:
    """The job-tag calls of a Spark session: a classic session's are its SparkContext's (SparkSession.interruptTag
    finds no classic jobs in Spark 4.0), a Spark Connect session's are its own."""

    def __init__(self, add, remove, interrupt):
        self.add, self.remove, self.interrupt = add, remove, interrupt

    @classmethod
    def of(cls, session) -> JobTags | None:
        """None for an object without a tag API (test doubles)."""
        try:
            context = None if type(session).__module__.startswith("pyspark.sql.connect") else session.sparkContext
        except Exception:  # noqa: BLE001 - no SparkContext (a Connect session under another name, a double)
            context = None
        if context is not None and callable(getattr(context, "cancelJobsWithTag", None)):
            return cls(context.addJobTag, context.removeJobTag, context.cancelJobsWithTag)
        calls = [getattr(session, name, None) for name in ("addTag", "removeTag", "interruptTag")]
        return cls(*calls) if all(callable(c) for c in calls) else None
