"""A LocalExecutor whose task processes start with the study code, MLflow and the Spark Connect client imported.

With the fork start method (Linux), LocalExecutor forks its worker processes from the scheduler when it starts,
and each worker forks one process per task (Airflow's task supervisor). What the scheduler has imported before
its workers exist, every task process has: an epoch task then spends its seconds on Spark and MLflow, not on
importing them again (about 0.3 s of pyspark's Connect client and our study code on the critical path, and a
second of MLflow's import that otherwise runs beside the epoch's training on the same CPUs).

Only imports (and then `gc.freeze` of what they made, import_gc.py, which the CPython docs recommend before a
fork): nothing here starts a thread, opens a connection or touches a database, so forking stays safe.
TensorFlow is not imported (the task processes that need it, select and register, import it themselves).
Use it as ``AIRFLOW__CORE__EXECUTOR=cerebro_ops.airflow.executor.WarmLocalExecutor``; on a spawn start method
it is LocalExecutor.
"""
from __future__ import annotations

import importlib
import logging

from airflow.executors.local_executor import LocalExecutor

log = logging.getLogger(__name__)

# What an epoch task imports on its way to the first hop (operators.CerebroEpochOperator, study.run_epoch).
WARM_MODULES = (
    "cerebro_ops.study",
    "cerebro_ops.mop.epoch",
    "cerebro_ops.spark.epoch_job",
    "pyspark.sql.connect.session",
    "mlflow",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
)


def preimport(modules=WARM_MODULES) -> list[str]:
    """Import `modules`; returns those that could not be imported (each logged, never raised)."""
    from cerebro_ops.import_gc import importing

    missing = []
    with importing():  # and then frozen: the forked task processes neither walk nor copy these objects
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - a task imports what it needs itself; this is a head start
                log.warning("not preloaded for task processes: %s (%s: %s)", name, type(exc).__name__, exc)
                missing.append(name)
    return missing


class WarmLocalExecutor(LocalExecutor):
    """LocalExecutor; its forked workers (and so every task process) start with WARM_MODULES imported."""

    def start(self) -> None:
        if self.is_mp_using_fork:
            preimport()
        super().start()
