"""The rows one worker serves, cached or streamed as the memory budget allows, and where each hop got them.

Decided once per partition from the Parquet footers (rows × bytes per row, core/memory_budget.py): a
partition that fits is read into numpy once and kept (reader.load_partition), as it always was; one that
does not is copied to this host's local disk once (data/local_copy.py) and streamed from there on every hop
(data/stream.py). Validation is the worker's own validation partition only, in the same mode, so the
cluster holds the validation rows once, not once per worker.
"""
from __future__ import annotations

from dataclasses import dataclass

from cerebro_ops.core.memory_budget import (CACHED, PartitionPlan, default_budget_mb, host_ram_mb, plan_partition,
                                            row_bytes)

MEMORY, LOCAL_DISK, STORE = "memory", "local_disk", "store"


@dataclass
class Rows:
    """One split's rows for a hop: numpy arrays (x, y), or a PartitionStream in x and None in y."""
    x: object
    y: object
    rows_from: str    # memory | local_disk | store
    bytes_read: int


class WorkerData:
    def __init__(self, data_url: str, partition: int, meta: dict, budget_mb: float | None = None,
                 local_dir: str = ""):
        self.url = data_url.rstrip("/")
        self.partition = int(partition)
        self.shape = tuple(int(d) for d in meta["input_shape"])
        self.budget_mb = float(budget_mb or default_budget_mb(None, host_ram_mb()))
        self.local_dir = local_dir
        self._plan: PartitionPlan | None = None
        self._streams: dict[str, object] = {}

    def part_url(self, split: str) -> str:
        return f"{self.url}/{split}/_partition={self.partition}"

    @property
    def plan(self) -> PartitionPlan:
        """Cached or streamed, from the rows in the partition's Parquet footers (read once)."""
        if self._plan is None:
            rows = (_footer_rows(self.part_url("train")), _footer_rows(self.part_url("val")))
            self._plan = plan_partition(rows, row_bytes(self.shape), self.budget_mb, self.partition)
        return self._plan

    def rows(self, split: str) -> Rows:
        """The split's rows of this partition for one hop."""
        if self.plan.mode == CACHED:
            return self._cached(split)
        return self._streamed(split)

    def eval_chunks(self, rows: Rows):
        """(x, y) pairs of `rows`, for HopTrainer.evaluate_part."""
        if rows.y is not None:
            return [(rows.x, rows.y)]
        return rows.x.eval_chunks()

    def _cached(self, split: str) -> Rows:
        from cerebro_ops.data.reader import is_cached, load_partition

        if _footer_rows(self.part_url(split)) == 0:
            return Rows(_empty(self.shape), _empty(()), MEMORY, 0)
        hit = is_cached(self.url, split, self.partition)
        x, y = load_partition(self.url, split, self.partition, self.shape)
        return Rows(x, y, MEMORY if hit else STORE, 0 if hit else _store_bytes(self.part_url(split)))

    def _streamed(self, split: str) -> Rows:
        from cerebro_ops.data.local_copy import ensure_local
        from cerebro_ops.data.stream import PartitionStream

        if _footer_rows(self.part_url(split)) == 0:
            return Rows(_empty(self.shape), _empty(()), MEMORY, 0)
        local = ensure_local(self.part_url(split), self.local_dir)
        stream = self._streams.get(split)
        if stream is None or stream.files != local.files:
            stream = self._streams[split] = PartitionStream(local.files, self.shape, self.plan.buffer_rows)
        return Rows(stream, None, STORE if local.copied_bytes else LOCAL_DISK, local.copied_bytes + stream.nbytes)


_FOOTERS: dict[str, int] = {}


def _footer_rows(part_url: str) -> int:
    """Rows of a partition directory from its Parquet footers (0 when it does not exist); once per process."""
    if part_url not in _FOOTERS:
        import pyarrow.parquet as pq

        from cerebro_ops.data.local_copy import parquet_names
        from cerebro_ops.store import Store

        part = Store(part_url)
        total = 0
        for name in parquet_names(part):
            with part.open(name) as fh:
                total += pq.ParquetFile(fh).metadata.num_rows
        _FOOTERS[part_url] = total
    return _FOOTERS[part_url]


def _store_bytes(part_url: str) -> int:
    from cerebro_ops.data.local_copy import parquet_names
    from cerebro_ops.store import Store

    part = Store(part_url)
    return sum(part.size(n) for n in parquet_names(part))


def _empty(shape: tuple):
    import numpy as np

    return np.zeros((0, *shape), dtype=np.float32)
