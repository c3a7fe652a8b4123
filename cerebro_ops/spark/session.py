"""Getting a Spark session: local[N], spark://host:port, or a shared Spark Connect session (sc://)."""
from __future__ import annotations

import os
import sys


def spark_env() -> None:
    """Workers must run this interpreter (TensorFlow lives in its venv) and bind to loopback locally."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # workers inherit it: keep TensorFlow's C++ chatter out


def get_spark(master: str, app_name: str = "cerebro-ops"):
    """Return a session; reuses the active one in this process (one Spark session for all epochs)."""
    spark_env()
    from pyspark.sql import SparkSession

    if master.startswith("sc://"):
        return SparkSession.builder.remote(master).getOrCreate()
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master == master:
        return active
    return (SparkSession.builder.master(master).appName(app_name)
            .config("spark.python.worker.reuse", "true")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "8")
            .config("spark.driver.memory", "2g")
            .getOrCreate())
