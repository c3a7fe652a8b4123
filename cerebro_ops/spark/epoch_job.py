"""The Spark job of one epoch: W tasks, each serving one partition's worker loop."""
from __future__ import annotations

import logging
import os
import re
import uuid
from functools import partial

from cerebro_ops.core.errors import ClusterError
from cerebro_ops.core.output import worker_environment
from cerebro_ops.mop.worker import EpochTask, spark_entry
from cerebro_ops.spark.job_tags import add_tag, interrupt_tag, launcher_running, remove_tag

log = logging.getLogger("cerebro_ops.spark")

RESULT_SCHEMA = "partition long, hops long, busy_s double, pid long"
LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class SparkLauncher:
    """Launch W long-lived worker tasks; one Spark job per epoch, not per hop.

    `spark.range(0, W, 1, W)` yields exactly one row per Spark partition, so task w serves partition w.
    mapInPandas (not the RDD API) works with classic Spark and with Spark Connect alike. All W tasks must
    run at the same time (they hand models to each other), so a local master with fewer than W task slots
    is refused before the job starts; on a cluster, whose executors may still be coming up, the driver's
    connect timeout (runtime.connect_timeout_s) turns a shortage into an error instead.
    """

    def __init__(self, spark, workers: int):
        self.spark = spark
        self.workers = workers
        self.tag = f"cerebro-epoch-{uuid.uuid4().hex[:12]}"
        self._master: str | None = None

    # ------------------------------------------------------------------ what the driver asks
    def is_connect(self) -> bool:
        return type(self.spark).__module__.startswith("pyspark.sql.connect")

    def master(self) -> str:
        if self._master is None:  # asked four times per launch: on Spark Connect each is a round trip
            try:
                self._master = self.spark.conf.get("spark.master", "") or ""
            except Exception:  # a Spark Connect server may not expose it
                self._master = ""
        return self._master

    def task_slots(self) -> int | None:
        """How many tasks the application can run at once, if Spark says; None when it cannot be known."""
        cpus = int(self._conf("spark.task.cpus", "1") or 1)
        m = re.fullmatch(r"local(?:\[(\d+|\*)(?:,\s*\d+)?\])?", self.master())
        if m:
            n = m.group(1) or "1"
            return ((os.cpu_count() or 1) if n == "*" else int(n)) // cpus
        if self.is_connect():
            return None
        try:  # what Spark's own barrier-stage check uses: free slots of the executors registered now
            jsc = self.spark.sparkContext._jsc.sc()
            return int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))
        except Exception:
            return None

    def advertised_host(self) -> str | None:
        """Where this application's executors reach the driver process: loopback for a local master
        (classic, or a Spark Connect server on this host); spark.driver.host for a classic cluster
        application; None when Spark cannot tell (a remote Spark Connect server: set CEREBRO_DRIVER_HOST)."""
        local = self.master().startswith("local")
        if not self.is_connect():
            return "127.0.0.1" if local else self._conf("spark.driver.host", None)
        server = getattr(getattr(self.spark, "client", None), "host", None)
        return "127.0.0.1" if local and server in LOOPBACK else None

    def _conf(self, key: str, default):
        try:
            return self.spark.conf.get(key, default)
        except Exception:
            return default

    # ------------------------------------------------------------------ launching
    def __call__(self, task: EpochTask) -> None:
        self.check_slots()
        task = self.with_memory_budget(task)
        ids = self.spark.range(0, self.workers, 1, self.workers).withColumnRenamed("id", "partition")
        entry = partial(spark_entry, task, env=worker_environment())  # quiet or verbose, as the driver is
        add_tag(self.spark, self.tag)  # per thread: cancel() interrupts this epoch's job only
        try:
            with launcher_running(self):  # job_tags.cancel_task_jobs cancels it through this registry
                rows = ids.mapInPandas(entry, schema=RESULT_SCHEMA).collect()
        finally:
            remove_tag(self.spark, self.tag)
        served = sorted(int(r["partition"]) for r in rows)
        if served != list(range(self.workers)):
            raise RuntimeError(f"expected workers 0..{self.workers - 1}, Spark ran {served}")

    def with_memory_budget(self, task: EpochTask) -> EpochTask:
        """The spec's runtime.worker_memory_mb; else, for a local master, half of this host's RAM over the W
        workers; else half of what Spark gives an executor (spark.executor.pyspark.memory, else
        spark.executor.memory) when the conf says; else the workers choose from their host's RAM."""
        if task.memory_mb is not None:
            return task
        from dataclasses import replace

        from cerebro_ops.core.memory_budget import default_budget_mb, host_ram_mb, local_budget_mb

        if self.master().startswith("local"):  # the W workers are processes of this host
            return replace(task, memory_mb=local_budget_mb(host_ram_mb(), self.workers))
        conf = self._conf("spark.executor.pyspark.memory", None) or self._conf("spark.executor.memory", None)
        return replace(task, memory_mb=default_budget_mb(conf, None)) if conf else task

    def check_slots(self) -> None:
        slots = self.task_slots()
        if slots is None or slots >= self.workers:
            return
        if self.master().startswith("local"):
            raise ClusterError("train.workers", f"{self.workers} workers must run at once, but the master "
                               f"{self.master()} runs {slots} task(s) at a time",
                               f"use runtime.spark_master: local[{self.workers}] or lower train.workers")
        log.warning("the Spark application has %d free task slot(s) now for %d workers; the epoch waits up to "
                    "runtime.connect_timeout_s for more executors", slots, self.workers)

    def cancel(self) -> None:
        """Interrupt this launcher's running job (the driver gave up waiting for its workers)."""
        try:
            interrupt_tag(self.spark, self.tag)
        except Exception:
            log.debug("could not interrupt the epoch job", exc_info=True)


def spark_launcher(spark, workers: int) -> SparkLauncher:
    """The epoch launcher study.run_epoch and the Spark tests use."""
    return SparkLauncher(spark, workers)
