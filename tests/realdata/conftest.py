"""Fixtures of the real-data tests: one Spark session, and one small study per corpus table, run on demand
and shared by every test of that table (a study costs ~30 s on an idle 2-CPU machine).

Each study is the CLI path (`study.run`) on the table's CSV with the spec's default split (seeded,
stratified for classification), the mlp builder, a 2-config grid x 4 epochs, W=2, seed 0, in its own tmp
store and sqlite MLflow (see harness.py).
"""
from __future__ import annotations

import os
import sys

import pytest

from .corpus import TABLES
from .harness import WORKERS, RealRun, run_table_study

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def spark():
    from cerebro_ops.spark.session import get_spark

    session = get_spark(f"local[{WORKERS}]", app_name="cerebro-realdata")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def studies(tmp_path_factory, spark):
    """studies(name) -> RealRun: each table's study runs once per session, the first time a test asks."""
    runs: dict[str, RealRun] = {}

    def get(name: str) -> RealRun:
        if name not in runs:
            runs[name] = run_table_study(TABLES[name], tmp_path_factory.mktemp(name), spark)
        return runs[name]

    return get
