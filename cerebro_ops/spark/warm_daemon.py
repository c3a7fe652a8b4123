"""Spark's Python worker daemon (`spark.python.daemon.module`), with TensorFlow and the trainer imported first.

Spark starts one daemon per executor and forks every Python worker from it. pyspark's own daemon imports
little, so each worker paid ≈ 2.5 s of CPU to import TensorFlow when an epoch's job reached it; W workers on
one host paid it W times, and a worker Spark replaced (killed after 60 s idle, or after a failed task) paid
it again. Forked from this daemon, a worker starts with the imports done: the host pays them once.

Importing is all this does before fork: TensorFlow creates its runtime (thread pools, devices) at the first
op, which runs in the forked worker, not here. A host where the import fails (no TensorFlow) still serves
plain Python workers: the daemon starts without it.
"""
from __future__ import annotations


def preload() -> bool:
    """Import what an epoch's workers need; False (and nothing raised) when that is not possible here."""
    from cerebro_ops.import_gc import importing

    try:
        # importing(): no full collections during the imports, then what they made is frozen, so neither this
        # daemon's forked workers nor pyspark's collection after each of their tasks walks it again
        with importing():
            from cerebro_ops.core.output import quiet_libraries

            quiet_libraries()  # TensorFlow reads its C++ log level at import
            import cerebro_ops.keras.trainer  # noqa: F401 - TensorFlow, Keras and the hop trainer
            import cerebro_ops.mop.worker  # noqa: F401
    except Exception:  # noqa: BLE001 - the daemon must start whatever this host lacks
        return False
    return True


def main() -> None:
    preload()
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
