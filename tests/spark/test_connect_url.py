"""Spark Connect URLs: every task joins one stable session."""
from cerebro_ops.spark.connect import shared_session_url


def test_stable_session_id_added(monkeypatch):
    monkeypatch.delenv("CEREBRO_SPARK_SESSION_ID", raising=False)
    a = shared_session_url("sc://127.0.0.1:15002")
    assert a.startswith("sc://127.0.0.1:15002/;session_id=")
    assert a == shared_session_url("sc://127.0.0.1:15002/")
    assert a != shared_session_url("sc://127.0.0.1:15003")


def test_existing_parameters_and_session_kept(monkeypatch):
    monkeypatch.setenv("CEREBRO_SPARK_SESSION_ID", "abc")
    assert shared_session_url("sc://h:1/;token=t") == "sc://h:1/;token=t;session_id=abc"
    assert shared_session_url("sc://h:1/;session_id=x") == "sc://h:1/;session_id=x"
