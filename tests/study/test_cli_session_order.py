"""`cerebro-ops run` joins a running Spark Connect server before TensorFlow's import starts (the import would
hold the GIL the join needs), and starts a local JVM in the background while TensorFlow imports."""
from __future__ import annotations

import threading
import time

import pytest

from cerebro_ops import cli, study
from cerebro_ops.core.spec import parse_spec


class Stop(Exception):
    """Raised by the faked study.run: the order of what came before is the result."""


def _spec(tmp_path, master: str):
    return parse_spec({
        "name": "order_demo",
        "data": {"source": str(tmp_path / "d.csv"), "label": "y", "numeric": ["a", "b"]},
        "model": {"builder": "cerebro_ops.builders:mlp"},
        "search": {"method": "grid", "num_configs": 2, "space": {"lr": [0.1, 0.01]}},
        "train": {"epochs": 1, "workers": 2, "metric": "val_loss"},
        "runtime": {"spark_master": master, "store": (tmp_path / "store").as_uri()},
    })


def _events_of_run(monkeypatch, spec) -> list[str]:
    events: list[str] = []
    lock = threading.Lock()

    def note(what: str) -> None:
        with lock:
            events.append(what)

    def session(_spec):
        note("session joining")
        time.sleep(0.3)
        note("session ready")
        return "spark"

    def run(*args, **kwargs):
        assert kwargs["spark"] == "spark"
        raise Stop

    monkeypatch.setattr(study, "check_spec_and_source", lambda path, overrides: spec)
    monkeypatch.setattr(study, "check_memory_plan", lambda s: None)
    monkeypatch.setattr(study, "start_builder_check", lambda s: note("builder check"))
    monkeypatch.setattr(cli, "_session_warming_workers", session)
    monkeypatch.setattr(study, "run", run)
    with pytest.raises(Stop):
        cli.cmd_run(cli.build_parser().parse_args(["run", "spec.yaml"]))
    return events


def test_a_spark_connect_server_is_joined_before_the_builder_check_starts(tmp_path, monkeypatch):
    events = _events_of_run(monkeypatch, _spec(tmp_path, "sc://localhost:15002"))
    assert events == ["session joining", "session ready", "builder check"]


def test_a_local_jvm_starts_while_the_builder_check_runs(tmp_path, monkeypatch):
    events = _events_of_run(monkeypatch, _spec(tmp_path, "local[2]"))
    assert sorted(events) == ["builder check", "session joining", "session ready"]
    assert events.index("builder check") < events.index("session ready")
