"""`cerebro.backend` equivalent: the Spark backend is just a Spark session and a worker count."""
from __future__ import annotations


class SparkBackend:
    """SparkBackend(spark_context=None, num_workers=None): MOP runs one long-lived task per worker."""

    # shape: the original Cerebro API's signature, kept so that its scripts run unchanged.
    def __init__(self, spark_context=None, num_workers: int | None = None, start_timeout: int = 600,
                 verbose: int = 1, nics=None, data_readers_pool_type: str = "thread",
                 num_data_readers: int = 10, **kwargs):
        from cerebro_ops.spark.session import spark_env

        spark_env()
        from pyspark.sql import SparkSession

        if spark_context is None:
            self.spark = SparkSession.builder.getOrCreate()
        else:
            self.spark = SparkSession.builder.config(conf=spark_context.getConf()).getOrCreate()
        self.num_workers = int(num_workers or self.spark.sparkContext.defaultParallelism)
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.verbose = verbose

    @property
    def spark_master(self) -> str:
        return self.spark.sparkContext.master

    def _num_workers(self) -> int:  # name used by the original API
        return self.num_workers
