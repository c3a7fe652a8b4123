"""Getting a Spark session: local[N], spark://host:port, or a shared Spark Connect session (sc://)."""
from __future__ import annotations

import os
import re
import sys

# Task attempts in local mode: plain local[N] never retries a failed task, so a worker process that dies
# mid-hop (OOM kill, segfault) would fail the whole epoch. local[N,F] retries it like a cluster does.
LOCAL_MAX_FAILURES = 4


def with_task_retries(master: str) -> str:
    """local[N] / local[*] / local -> local[N,4]; any other master (and local[N,F]) is returned as is."""
    if master == "local":
        return f"local[1,{LOCAL_MAX_FAILURES}]"
    m = re.fullmatch(r"local\[(\d+|\*)\]", master)
    return f"local[{m.group(1)},{LOCAL_MAX_FAILURES}]" if m else master


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

    if master.startswith("sc://"):  # every task joins one shared session: warm Python workers
        from .connect import connect_session
        return connect_session(master)
    master = with_task_retries(master)
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
