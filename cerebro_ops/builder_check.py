"""The model builder check on a thread, overlapping the Spark work of prepare.

Why a thread: the check imports TensorFlow (2-3 s in a new process) and builds and evaluates one model, while
the driver waits: for the JVM to start (the CLI starts the check first), or for a Spark Connect server to run
prepare's jobs (study._prepare_data lets those overlap the check; a classic session's prepare, driven by
thousands of py4j calls from the driver's thread, does not, since each of them would wait for the GIL).

What stays as before: a broken builder is the error the user sees, also when the data is bad too; the study
leaves nothing behind (prepare deletes the data it wrote, and no MLflow run exists yet); and the error comes
about as soon as the check fails, since the check interrupts the Spark jobs prepare tagged (`interrupting`,
with the job tags of spark/job_tags.py).
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
        from cerebro_ops.spark.job_tags import interrupt_tag

        with self._lock:
            if self._watched is None:
                return False
            try:
                interrupt_tag(*self._watched)
            except Exception as exc:  # noqa: BLE001 - the error still comes, once the jobs end on their own
                log.debug("could not interrupt %s: %s", self._watched[1], exc)
                self._watched = None
        return True

    def error(self) -> Exception | None:
        self._done.wait()
        return self._error

    @contextlib.contextmanager
    def interrupting(self, session, tag: str):
        """The Spark jobs this thread starts inside the block carry `tag` (spark/job_tags.py); a failed check
        interrupts them. A session that cannot be tagged (a test double) runs its block to the end."""
        from cerebro_ops.spark.job_tags import add_tag, remove_tag

        with self._lock:
            if self._error is not None:
                raise self._error
            self._watched = (session, tag)  # before the tag: the retried interrupt reaches later jobs
        try:
            add_tag(session, tag)
            tagged = True
        except Exception as exc:  # noqa: BLE001 - no tag API: nothing to interrupt
            log.debug("cannot tag the jobs of %r: %s", session, exc)
            tagged = False
            with self._lock:
                self._watched = None
        try:
            yield
        finally:
            with self._lock:
                self._watched = None
            if tagged:
                remove_tag(session, tag)
