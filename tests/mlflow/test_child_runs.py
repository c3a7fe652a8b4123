"""ChildRuns through a TrackingQueue: the calls run in order on one thread, log what was current when they
were made (the record moves on with the next epoch), and a failing call does not stop the ones after it."""
from __future__ import annotations

import threading

from cerebro_ops.core.run_state import EpochEntry, ModelRecord, ModelStatus
from cerebro_ops.core.spec import parse_spec
from cerebro_ops.mlflow.child_runs import ChildRuns, TrackingQueue
from cerebro_ops.store import Store

SPEC = parse_spec({"name": "t", "data": {"source": "x.csv", "label": "y", "numeric": ["a"]},
                   "model": {"builder": "cerebro_ops.builders:mlp"},
                   "search": {"method": "grid", "num_configs": 1, "space": {"hidden_units": [8]}},
                   "train": {"epochs": 3, "workers": 2, "metric": "val_loss", "direction": "min"}})


class RecordingTracker:
    def __init__(self, gate: threading.Event | None = None):
        self.calls, self.threads, self.gate = [], set(), gate

    def _note(self, *call):
        if self.gate is not None:
            self.gate.wait(5)
        self.threads.add(threading.current_thread().name)
        self.calls.append(call)

    def log_epoch_result(self, child, epoch, metrics, best, ckpt):
        self._note("epoch", child, epoch, metrics["val_loss"], best, ckpt[0] if ckpt else None)

    def end_config(self, child, status, tags):
        if status == "BOOM":
            raise RuntimeError("tracking server down")
        self._note("end", child, status)


def _record(store: Store) -> ModelRecord:
    rec = ModelRecord("m000", {"hidden_units": 8}, mlflow_run="child-1")
    for epoch, loss in ((1, 0.5), (2, 0.4)):
        sha = store.write_blob(f"ckpt/m000/e{epoch}.npz", f"weights{epoch}".encode())
        rec.ckpt = {"ckpt": f"ckpt/m000/e{epoch}.npz", "sha256": sha}
        rec.history.append(EpochEntry(epoch, {"val_loss": loss}, rec.ckpt))
    return rec


def test_background_logging_is_in_order_off_the_callers_thread_and_logs_the_epoch_as_it_was(tmp_path):
    store = Store(tmp_path.as_uri())
    gate = threading.Event()  # hold the logging thread until the record has moved on
    tracker, queue = RecordingTracker(gate), TrackingQueue()
    children = ChildRuns(tracker, "parent", background=queue)
    rec = _record(store)
    children.epoch_done(rec, SPEC, store, 2)
    rec.history.append(EpochEntry(3, {"val_loss": 0.9}, None))  # the next epoch's results arrive meanwhile
    rec.ckpt, rec.status = None, ModelStatus.FINISHED
    children.end(rec)
    assert tracker.calls == []  # nothing logged on the caller's thread
    gate.set()
    queue.close()
    assert tracker.calls == [("epoch", "child-1", 2, 0.4, ("val_loss", 0.4, 2), b"weights2"),
                             ("end", "child-1", "FINISHED")]
    assert tracker.threads == {"mlflow-logging"}


def test_a_failing_call_is_logged_and_the_queue_goes_on(caplog):
    tracker, queue = RecordingTracker(), TrackingQueue()
    queue.submit(lambda: tracker.end_config("a", "BOOM", {}))
    queue.submit(lambda: tracker.end_config("b", "KILLED", {}))
    queue.drain()
    assert tracker.calls == [("end", "b", "KILLED")]
    assert "background MLflow logging failed" in caplog.text
    queue.close()


def test_without_a_queue_the_calls_run_inline(tmp_path):
    store = Store(tmp_path.as_uri())
    tracker = RecordingTracker()
    ChildRuns(tracker, "parent").epoch_done(_record(store), SPEC, store, 2)
    assert tracker.calls == [("epoch", "child-1", 2, 0.4, ("val_loss", 0.4, 2), b"weights2")]
    assert tracker.threads == {threading.current_thread().name}


def test_an_unreadable_checkpoint_still_logs_the_epochs_metrics(tmp_path, caplog):
    store = Store(tmp_path.as_uri())
    rec = _record(store)
    store.write_bytes(rec.ckpt["ckpt"], b"corrupted")  # its sha256 no longer matches
    tracker = RecordingTracker()
    ChildRuns(tracker, "parent").epoch_done(rec, SPEC, store, 2)
    assert tracker.calls == [("epoch", "child-1", 2, 0.4, ("val_loss", 0.4, 2), None)]
    assert "not logged to MLflow" in caplog.text
