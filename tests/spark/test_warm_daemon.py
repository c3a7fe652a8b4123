"""Spark's Python workers are forked from cerebro-ops' daemon, which has imported TensorFlow and the trainer:
a worker starts with them (no per-worker import when an epoch reaches it) and a host pays the import once."""
from __future__ import annotations

import builtins
import sys

import pandas as pd
import pytest

from cerebro_ops.spark import warm_daemon


def _what_the_worker_has(batches):
    import os
    import sys

    preloaded = "tensorflow" in sys.modules and "cerebro_ops.keras.trainer" in sys.modules
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
        parent = f.read().replace(b"\0", b" ").decode()
    for _ in batches:
        yield pd.DataFrame({"preloaded": [preloaded], "parent": [parent], "pid": [os.getpid()]})


@pytest.fixture(scope="module")
def spark():
    from cerebro_ops.spark.session import get_spark
    return get_spark("local[2]")


def test_workers_fork_from_the_daemon_with_tensorflow_imported(spark):
    from cerebro_ops.spark.session import warm_up_workers

    warm_up_workers(spark).join(timeout=120)
    rows = (spark.range(2, numPartitions=2)
            .mapInPandas(_what_the_worker_has, "preloaded boolean, parent string, pid long").collect())
    assert len(rows) == 2 and all(r.preloaded for r in rows)
    assert all("cerebro_ops.spark.warm_daemon" in r.parent for r in rows)


def test_the_daemon_starts_without_tensorflow(monkeypatch):
    real_import = builtins.__import__

    def no_tensorflow(name, *args, **kwargs):
        if name.startswith("cerebro_ops.keras"):
            raise ImportError("No module named 'tensorflow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorflow)
    assert warm_daemon.preload() is False


def test_preload_imports_the_trainer():
    import sys

    assert warm_daemon.preload() is True
    assert "cerebro_ops.keras.trainer" in sys.modules and "tensorflow" in sys.modules


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12 reads zip directories lazily by itself")
def test_an_unchanged_zip_on_the_path_is_not_read_again_before_each_task(tmp_path, monkeypatch):
    import importlib
    import os
    import zipfile
    import zipimport

    archive = tmp_path / "lib.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("zip_probe_a.py", "VALUE = 'a'\n")
    monkeypatch.syspath_prepend(str(archive))
    monkeypatch.setattr(zipimport.zipimporter, "invalidate_caches", zipimport.zipimporter.invalidate_caches)
    for name in ("zip_probe_a", "zip_probe_b"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import zip_probe_a

    reads = []
    read = zipimport._read_directory
    monkeypatch.setattr(zipimport, "_read_directory", lambda path: reads.append(path) or read(path))
    warm_daemon.reread_zips_only_when_changed()
    warm_daemon.reread_zips_only_when_changed()  # a second call does not wrap it twice
    importlib.invalidate_caches()
    first = len(reads)
    assert first >= 1  # the first call notes each archive as it is now
    for _ in range(3):
        importlib.invalidate_caches()  # pyspark's worker, before each task
    assert len(reads) == first

    with zipfile.ZipFile(archive, "a") as z:  # a job replaced the archive: read again, its new module found
        z.writestr("zip_probe_b.py", "VALUE = 'b'\n")
    os.utime(archive, ns=(1, os.stat(archive).st_mtime_ns + 10**9))
    importlib.invalidate_caches()
    assert reads[first:] == [str(archive)]
    import zip_probe_b

    assert (zip_probe_a.VALUE, zip_probe_b.VALUE) == ("a", "b")
