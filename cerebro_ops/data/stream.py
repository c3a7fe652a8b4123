"""A partition too large for the worker's memory budget, read in Arrow record batches on every hop.

Rows go through a seeded shuffle buffer: the row groups are read in an order drawn from the hop seed, the
buffer fills up to `buffer_rows`, its rows are put in `_order` and permuted by the hop's generator, and the
whole batches of that permutation are trained on; the rows of a last, partial batch stay in the buffer for
the next fill, so every batch but the hop's last is full, as in the cached path. The data was shuffled
globally when it was prepared, so a buffer of a partition's rows is a sample of it, not a sorted run.

With a buffer as large as the partition the rows and their order are exactly those of the cached path
(all rows in `_order`, permuted by `row_order(n, seed)`), so the two give the same models.
"""
from __future__ import annotations

import math
import os
from typing import Iterator, Sequence

import numpy as np

COLUMNS = ["features", "label", "_order"]
_MAX_READ_ROWS = 65536


class PartitionStream:
    """The Parquet files of one partition on local disk, streamed through a shuffle buffer."""

    def __init__(self, files: Sequence[str], input_shape: Sequence[int], buffer_rows: int):
        import pyarrow.parquet as pq

        self.files = tuple(files)
        self.shape = tuple(int(d) for d in input_shape)
        self.width = math.prod(self.shape)
        self.buffer_rows = max(1, int(buffer_rows))
        self.units: list[tuple[int, int]] = []  # (file, row group)
        self.rows = 0
        for i, path in enumerate(self.files):
            meta = pq.ParquetFile(path).metadata
            for g in range(meta.num_row_groups):
                if meta.row_group(g).num_rows:
                    self.units.append((i, g))
                    self.rows += meta.row_group(g).num_rows
        self.nbytes = sum(os.path.getsize(p) for p in self.files)
        self._read_rows = max(256, min(_MAX_READ_ROWS, self.buffer_rows // 8))

    def __len__(self) -> int:
        return self.rows

    def train_chunks(self, seed: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(x, y, order) per buffer: train on x[order] in batches of `batch_size`, in that order."""
        rng = np.random.default_rng(int(seed))  # its first permutation is trainer.row_order's
        units = [self.units[i] for i in np.random.default_rng([int(seed), 1]).permutation(len(self.units))]
        bs = max(1, int(batch_size))
        fill = max(self.buffer_rows, bs)
        carry: list[tuple] = []
        parts, have, seen = [], 0, 0
        for part in self._batches(units):
            parts.append(part)
            have += len(part[1])
            seen += len(part[1])
            if have >= fill and seen < self.rows:  # the partition's last rows go to the final buffer
                x, y, order, kept = _shuffled(carry + parts, rng, bs, final=False)
                yield x, y, order
                carry, parts, have = [kept], [], len(kept[1])
        x, y, order, _ = _shuffled(carry + parts, rng, bs, final=True)
        if len(order):
            yield x, y, order

    def eval_chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(x, y) of at most `buffer_rows` rows each, in file order (evaluation needs no shuffle)."""
        parts, have = [], 0
        for part in self._batches(self.units):
            parts.append(part)
            have += len(part[1])
            if have >= self.buffer_rows:
                x, y, _ = _concat(parts)
                yield x, y
                parts, have = [], 0
        if parts:
            x, y, _ = _concat(parts)
            yield x, y

    def _batches(self, units) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        import pyarrow.parquet as pq

        for f, g in units:
            # no pre-buffering: pages are read as the batches need them, so memory follows the batch size
            pf = pq.ParquetFile(self.files[f], pre_buffer=False, buffer_size=1 << 20)
            for batch in pf.iter_batches(batch_size=self._read_rows, row_groups=[g], columns=COLUMNS,
                                         use_threads=False):
                if batch.num_rows:
                    yield _numpy(batch, self.width)


def _numpy(batch, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    feats = batch.column(0)
    values = feats.flatten().to_numpy(zero_copy_only=False)
    x = np.asarray(values, dtype=np.float32).reshape(batch.num_rows, width)
    y = np.asarray(batch.column(1).to_numpy(zero_copy_only=False), dtype=np.float32)
    order = np.asarray(batch.column(2).to_numpy(zero_copy_only=False), dtype=np.int64)
    return x, y, order


def _concat(parts: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]


def _shuffled(parts: list[tuple], rng, bs: int, final: bool):
    """The buffer in _order, the permutation's whole batches to train on now, and the rows kept back."""
    if not parts:
        empty = (np.zeros((0, 1), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        return empty[0], empty[1], np.zeros(0, np.int32), empty
    x, y, o = _concat(parts)
    sort = np.argsort(o, kind="stable")
    x, y, o = x[sort], y[sort], o[sort]
    perm = rng.permutation(len(o)).astype(np.int32)
    take = len(perm) if final else (len(perm) // bs) * bs
    rest = perm[take:]
    return x, y, perm[:take], (x[rest], y[rest], o[rest])
