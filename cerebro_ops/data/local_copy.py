"""A streamed partition's files, copied once per worker host to local disk and read from there afterwards.

A worker streams its partition once per hop; reading it from the store every hop would move the data over
the network W × models times an epoch. The copy lives in Spark's local directory (SPARK_LOCAL_DIRS, which
Spark sets for its Python workers from spark.local.dir) or runtime.local_dir, under a name derived from the
partition's store URL, so later hops, epochs and tasks on the host find it. It is written to a temporary
directory and renamed into place, under a host-wide file lock, so two tasks never read a half-written copy.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass

_COPY_CHUNK = 8 << 20  # bounded memory while copying, whatever the file size
_DONE = "_COPIED"


@dataclass(frozen=True)
class LocalPartition:
    path: str            # the local directory holding the partition's Parquet files
    files: tuple[str, ...]
    copied_bytes: int    # bytes read from the store now: 0 when the copy was already on this host


def local_root(local_dir: str = "") -> str:
    """runtime.local_dir, else Spark's first local dir, else the temp directory."""
    spark_dirs = os.environ.get("SPARK_LOCAL_DIRS", "")
    root = local_dir or (spark_dirs.split(",")[0] if spark_dirs else "") or tempfile.gettempdir()
    return os.path.join(root, "cerebro-data")


def ensure_local(part_url: str, local_dir: str = "") -> LocalPartition:
    """The partition at `part_url` (a directory of Parquet files in the store) on this host's disk."""
    target = os.path.join(local_root(local_dir), hashlib.sha256(part_url.rstrip("/").encode()).hexdigest()[:24])
    os.makedirs(os.path.dirname(target), exist_ok=True)
    copied = 0
    if not os.path.exists(os.path.join(target, _DONE)):
        with _host_lock(target + ".lock"):
            if not os.path.exists(os.path.join(target, _DONE)):
                copied = _copy(part_url, target)
    files = tuple(sorted(os.path.join(target, n) for n in os.listdir(target) if n.endswith(".parquet")))
    return LocalPartition(target, files, copied)


def _copy(part_url: str, target: str) -> int:
    from cerebro_ops.store import Store

    part = Store(part_url)
    names = parquet_names(part)
    if not names:
        raise FileNotFoundError(f"no Parquet files under {part_url}")
    tmp = tempfile.mkdtemp(prefix=os.path.basename(target) + ".", dir=os.path.dirname(target))
    total = 0
    try:
        for i, name in enumerate(names):
            with part.open(name) as src, open(os.path.join(tmp, f"part-{i:05d}.parquet"), "wb") as dst:
                total += _pump(src, dst)
        open(os.path.join(tmp, _DONE), "w").close()
        if os.path.exists(target):  # an interrupted copy of an earlier task
            shutil.rmtree(target)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return total


def parquet_names(part) -> list[str]:
    """The Parquet files of a partition folder (a Store rooted there), sorted; [] when it does not exist."""
    return [n for n in part.listdir() if n.endswith(".parquet")]


def _pump(src, dst) -> int:
    total = 0
    while True:
        chunk = src.read(_COPY_CHUNK)
        if not chunk:
            return total
        dst.write(chunk)
        total += len(chunk)


@contextmanager
def _host_lock(path: str):
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
