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
        buf = _Buffer(max(self.buffer_rows, bs), self._read_rows, self.width)
        seen = 0
        for part in self._batches(units):
            buf.add(part)
            seen += len(part[1])
            if buf.full() and seen < self.rows:  # the partition's last rows go to the final buffer
                yield buf.shuffled(rng, bs, final=False)
        x, y, order = buf.shuffled(rng, bs, final=True)
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


class _Buffer:
    """The shuffle buffer: rows written into preallocated arrays, so filling it makes no second copy."""

    def __init__(self, fill: int, read_rows: int, width: int):
        self.fill = fill
        cap = fill + read_rows
        self.x = np.empty((cap, width), np.float32)
        self.y = np.empty(cap, np.float32)
        self.o = np.empty(cap, np.int64)
        self.m = 0
        self.rest: np.ndarray | None = None  # rows kept from the last shuffle, moved to the front on next use

    def add(self, part: tuple) -> None:
        self._compact()
        k = len(part[1])
        if self.m + k > len(self.y):  # only when a read is larger than planned
            self._grow(self.m + k)
        for dst, src in zip((self.x, self.y, self.o), part):
            dst[self.m:self.m + k] = src
        self.m += k

    def full(self) -> bool:
        return self.m >= self.fill

    def shuffled(self, rng, bs: int, final: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, order) of the buffer's rows (views, valid until the next add): `order` visits them in
        _order permuted by `rng`, whole batches only unless `final`; a partial last batch waits for the next
        fill. Sorting the indices, not the rows, spares a copy of the buffer."""
        self._compact()
        m = self.m
        by_order = np.argsort(self.o[:m], kind="stable")
        perm = by_order[rng.permutation(m)].astype(np.int32)
        take = m if final else (m // bs) * bs
        self.rest = perm[take:]
        return self.x[:m], self.y[:m], perm[:take]

    def _compact(self) -> None:
        if self.rest is None:
            return
        for a in (self.x, self.y, self.o):
            a[:len(self.rest)] = a[self.rest]
        self.m, self.rest = len(self.rest), None

    def _grow(self, rows: int) -> None:
        extra = rows - len(self.y)
        self.x = np.concatenate([self.x, np.empty((extra, self.x.shape[1]), np.float32)])
        self.y = np.concatenate([self.y, np.empty(extra, np.float32)])
        self.o = np.concatenate([self.o, np.empty(extra, np.int64)])
