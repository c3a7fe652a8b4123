"""A tracking_uri's password never reaches MLflow artifacts or log lines."""
from __future__ import annotations

import logging
import time

import pytest

from cerebro_ops.core.redact import redact

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize("text, want", [
    (f"postgresql+psycopg2://cerebro:{SECRET}@db:5432/mlflow", "postgresql+psycopg2://cerebro:***@db:5432/mlflow"),
    (f"tracking_uri: https://me:{SECRET}@mlflow.example/x\nstore: s3://b/k",
     "tracking_uri: https://me:***@mlflow.example/x\nstore: s3://b/k"),
    (f"mysql://u@h/db?password={SECRET}&ssl=1", "mysql://u@h/db?password=***&ssl=1"),
    ("http://mlflow:5000", "http://mlflow:5000"),
    ("sqlite:////abs/mlflow.db", "sqlite:////abs/mlflow.db"),
    ("hdfs://namenode:8020/store", "hdfs://namenode:8020/store"),
])
def test_redact(text, want):
    assert redact(text) == want


def test_spec_artifact_and_tracking_warnings_carry_no_password(tmp_path, caplog, monkeypatch):
    pytest.importorskip("mlflow")
    import yaml
    from mlflow import MlflowClient

    from cerebro_ops.core.spec import parse_spec
    from cerebro_ops.mlflow.tracking import Tracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    spec = parse_spec({"name": "red", "data": {"source": "/tmp/d.csv", "label": "y", "numeric": ["a"]},
                       "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "grid", "space": {"lr": [0.1]}},
                       "runtime": {"tracking_uri": f"postgresql://cerebro:{SECRET}@db.example:5432/mlflow"}})
    tr = Tracker(uri, "red")
    parent = tr.start_study(spec, "r1", {})
    tr.log_study(parent, yaml.safe_dump(spec.to_dict(), sort_keys=False), [], [], spec.train.metric)
    d = MlflowClient(uri).download_artifacts(parent, "spec.yaml", str(tmp_path / "dl"))
    text = open(d).read()
    assert SECRET not in text and "postgresql://cerebro:***@db.example:5432/mlflow" in text

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    down = Tracker(f"http://me:{SECRET}@127.0.0.1:9", "down")
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cerebro_ops.mlflow.tracking"):
        assert down.start_study(spec, "r1", {}) is None
    assert time.monotonic() - t0 < 60
    lines = [r.getMessage() for r in caplog.records if "start_study" in r.getMessage()]
    assert lines and all(SECRET not in line for line in lines)
    assert any("http://me:***@127.0.0.1:9" in line for line in lines)
