"""The CLI progress display: plain lines when stderr is not a terminal, a tqdm bar when it is."""
from __future__ import annotations

import io
import logging

from cerebro_ops.cli import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _records(n_train: int, evals: list[float]) -> list[dict]:
    out = [{"kind": "train", "status": "ok"} for _ in range(n_train)]
    out.append({"kind": "train", "status": "failed"})  # a failed unit does not count as done
    out += [{"kind": "eval", "status": "ok", "metrics": {"accuracy": v}} for v in evals]
    return out


def test_plain_lines_without_a_terminal():
    stream = io.StringIO()
    p = Progress(total_per_epoch=10, epochs=2, metric="val_accuracy", direction="max", stream=stream)
    p.start_epoch(1)
    for rec in _records(12, [0.6, 0.8, 0.7, 0.75, 0.5, 0.55, 0.9, 0.6]):
        p.record(rec)
    p.close()
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # one line per tenth of the 20 units: 2, 4, ..., 20
    assert [ln.split()[1] for ln in lines] == [f"{n}/20" for n in range(2, 21, 2)]
    assert lines[-1].startswith("progress: 20/20 units (100%)  epoch 1  best val_accuracy~0.9000")
    assert "best val_accuracy~-" in lines[0]  # no evaluation yet


def test_minimised_metric_keeps_the_lowest():
    stream = io.StringIO()
    p = Progress(total_per_epoch=2, epochs=1, metric="val_loss", direction="min", stream=stream)
    for v in (0.7, 0.3):
        p.record({"kind": "eval", "status": "ok", "metrics": {"loss": v}})
    assert p.best == 0.3 and "best val_loss~0.3000" in stream.getvalue().splitlines()[-1]


def test_tqdm_bar_on_a_terminal_with_log_lines_above_it():
    stream = Terminal()
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    root.addHandler(handler)
    try:
        p = Progress(total_per_epoch=4, epochs=1, metric="val_accuracy", direction="max", stream=stream)
        p.start_epoch(1)
        for rec in _records(2, [0.8]):
            p.record(rec)
        logging.getLogger("cerebro_ops.mop.epoch").warning("hop epoch=1 model=m000 partition=0")
        assert p._bar.n == 3
        p.close()
        assert handler in root.handlers  # the logging redirection is undone
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    assert "epoch 1" in text and "3/4" in text and "best val_accuracy~0.8000" in text
    assert "hop epoch=1 model=m000 partition=0" in text
