"""Spark's Python worker daemon (`spark.python.daemon.module`), with TensorFlow and the trainer imported first.

Spark starts one daemon per executor and forks every Python worker from it. pyspark's own daemon imports
little, so each worker paid ≈ 2.5 s of CPU to import TensorFlow when an epoch's job reached it; W workers on
one host paid it W times, and a worker Spark replaced (killed after 60 s idle, or after a failed task) paid
it again. Forked from this daemon, a worker starts with the imports done: the host pays them once.

Importing is all this does before fork (and freezing what the imports made, and keeping pyspark's per-task
cache invalidation from re-reading unchanged zip archives): TensorFlow creates its runtime (thread pools,
devices) at the first op, which runs in the forked worker, not here. A host where the import fails (no
TensorFlow) still serves plain Python workers: the daemon starts without it.
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


def reread_zips_only_when_changed() -> None:
    """Before every task, pyspark's worker calls importlib.invalidate_caches() (for files a job adds). On Python
    3.11 every zipimporter then reads its archive's whole directory again: one per package imported from
    pyspark.zip and py4j's zip, 17 here, 70-120 ms of each task's start, measured. Here an archive whose size and
    modification time are those of the last read is not read again (a changed one still is), as a FileFinder
    tells a changed directory by its mtime; Python 3.12 reads them lazily and needs none of this."""
    import sys
    if sys.version_info >= (3, 12):
        return
    import os
    import zipimport

    reread = zipimport.zipimporter.invalidate_caches
    if getattr(reread, "_keeps_unchanged", False):
        return

    def invalidate_caches(self) -> None:
        try:
            st = os.stat(self.archive)
            seen = (st.st_size, st.st_mtime_ns)
        except OSError:
            seen = None
        if seen is None or getattr(self, "_cerebro_seen", None) != seen:
            reread(self)
            self._cerebro_seen = seen

    invalidate_caches._keeps_unchanged = True
    zipimport.zipimporter.invalidate_caches = invalidate_caches


def main() -> None:
    import importlib

    preload()
    reread_zips_only_when_changed()
    importlib.invalidate_caches()  # each zipimporter notes its archive here, once, not in every forked worker
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
