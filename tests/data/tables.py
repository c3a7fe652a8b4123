"""Encoded partitions written directly with pyarrow, in chunks (no Spark): the layout prepare writes,
data/{train,val}/_partition=<w>/*.parquet with features (list<float>), label, _order."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema([("features", pa.list_(pa.float32())), ("label", pa.float32()), ("_order", pa.int64())])


def rows(n: int, width: int, seed: int, task: str = "binary") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, width)).astype(np.float32)
    signal = x[:, 0] + 0.5 * x[:, 1 % width]
    y = (signal > 0).astype(np.float32) if task == "binary" else signal.astype(np.float32)
    return x, y


def write_partition(folder: str, x: np.ndarray, y: np.ndarray, order: np.ndarray, group_rows: int = 1000,
                    files: int = 2) -> None:
    """The rows in `files` Parquet files of row groups of `group_rows` rows, in a shuffled row order."""
    os.makedirs(folder, exist_ok=True)
    perm = np.random.default_rng(len(x)).permutation(len(x))
    for f, idx in enumerate(np.array_split(perm, files)):
        with pq.ParquetWriter(os.path.join(folder, f"part-{f:05d}.parquet"), SCHEMA) as w:
            for start in range(0, len(idx), group_rows):
                w.write_table(_table(x, y, order, idx[start:start + group_rows]))


def write_generated(folder: str, n: int, width: int, seed: int, chunk: int = 50_000) -> int:
    """`n` random rows written chunk by chunk (memory stays at one chunk); the file's bytes."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "part-00000.parquet")
    with pq.ParquetWriter(path, SCHEMA, compression="none") as w:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            x, y = rows(m, width, seed + start)
            w.write_table(_table(x, y, np.arange(start, start + m, dtype=np.int64), np.arange(m)))
    return os.path.getsize(path)


def write_split(root: str, split: str, x: np.ndarray, y: np.ndarray, workers: int, **kw) -> None:
    """Row i → partition i % workers, with _order i // workers inside it (as prepare.partition)."""
    for w in range(workers):
        idx = np.arange(w, len(x), workers)
        write_partition(f"{root}/{split}/_partition={w}", x[idx], y[idx], np.arange(len(idx)), **kw)


def _table(x, y, order, idx) -> pa.Table:
    width = x.shape[1]
    flat = pa.array(np.ascontiguousarray(x[idx]).reshape(-1), pa.float32())
    offsets = pa.array(np.arange(0, (len(idx) + 1) * width, width, dtype=np.int32))
    feats = pa.ListArray.from_arrays(offsets, flat)
    return pa.table([feats, pa.array(y[idx], pa.float32()), pa.array(order[idx], pa.int64())], schema=SCHEMA)
