"""The Spark job of one epoch: W tasks, each serving one partition's worker loop."""
from __future__ import annotations

from functools import partial
from typing import Callable

from ..output import worker_environment
from ..worker import EpochTask, spark_entry

RESULT_SCHEMA = "partition long, hops long, busy_s double, pid long"


def spark_launcher(spark, workers: int) -> Callable[[EpochTask], None]:
    """Launch W long-lived worker tasks; one Spark job per epoch, not per hop.

    `spark.range(0, W, 1, W)` yields exactly one row per Spark partition, so task w serves partition w.
    mapInPandas (not the RDD API) works with classic Spark and with Spark Connect alike.
    """

    def launch(task: EpochTask) -> None:
        ids = spark.range(0, workers, 1, workers).withColumnRenamed("id", "partition")
        entry = partial(spark_entry, task, env=worker_environment())  # quiet or verbose, as the driver is
        rows = ids.mapInPandas(entry, schema=RESULT_SCHEMA).collect()
        served = sorted(int(r["partition"]) for r in rows)
        if served != list(range(workers)):
            raise RuntimeError(f"expected workers 0..{workers - 1}, Spark ran {served}")

    return launch
