"""Spark Connect: every task of every epoch joins one fixed session, so Python workers stay warm.

Each Airflow task is a new OS process. With a new Spark application (or a new Connect session) per task,
every epoch pays the TensorFlow import in fresh Python workers (≈ 15 s here); when all tasks join one
Connect session, the server keeps the same workers, and an epoch task's fixed cost drops to ≈ 2 s (a
tiny job; a demo epoch task measured ≈ 9 s in all, its training included). The session id is
derived from the server URL (or set with CEREBRO_SPARK_SESSION_ID), and the session is never stopped.
"""
from __future__ import annotations

import gc
import logging
import os
import uuid

log = logging.getLogger("cerebro_ops.spark.connect")

SESSION_ENV = "CEREBRO_SPARK_SESSION_ID"


def shared_session_url(url: str) -> str:
    """Add a stable `session_id` to an sc:// URL that has none."""
    if "session_id=" in url:
        return url
    base = url.split(";", 1)[0].rstrip("/")
    sid = os.environ.get(SESSION_ENV) or str(uuid.uuid5(uuid.NAMESPACE_URL, f"cerebro-ops:{base}"))
    if ";" in url:  # parameters already present (e.g. a token)
        return f"{url};session_id={sid}"
    return f"{url.rstrip('/')}/;session_id={sid}"


def connect_session(url: str):
    """Join the shared session; if the server closed it (restart, expiry), fall back to a new one."""
    from pyspark.sql import SparkSession

    shared = shared_session_url(url)
    spark = SparkSession.builder.remote(shared).getOrCreate()
    try:
        # Any RPC tells a closed session: a config read takes milliseconds, a query (range(1).collect()) 50-90 ms
        spark.conf.get("spark.master", "")
        return spark
    except Exception as exc:  # [INVALID_HANDLE.SESSION_CLOSED] and friends: one cold epoch, then warm again
        if "SESSION_CLOSED" not in str(exc) and "INVALID_HANDLE" not in str(exc):
            raise
    log.warning("shared Spark Connect session is closed; starting a new one")
    try:
        spark.stop()
    except Exception:
        pass
    # pyspark: a dropped session's __del__ shuts down the thread pool every session of this process releases its
    # results on; collect the closed one now (outside the except block, whose traceback holds it), not amid the
    # new session's first query, which then fails with "cannot schedule new futures after shutdown"
    del spark
    gc.collect()
    fresh = shared.split("session_id=")[0] + f"session_id={uuid.uuid4()}"
    return SparkSession.builder.remote(fresh).getOrCreate()
