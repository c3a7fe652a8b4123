"""How much of a worker's memory the data may take, and whether a partition is cached or streamed. Pure.

A worker holds its data twice while training on it: the numpy arrays and the tensor TensorFlow trains from.
A partition is cached when its train rows and its validation rows fit in the budget that way; otherwise it
is streamed in Arrow record batches through a shuffle buffer sized from the budget (see data/stream.py).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from cerebro_ops.core.errors import FieldError

FIELD = "runtime.worker_memory_mb"
CACHED, STREAMED = "cached", "streamed"
# Copies of the rows a worker holds at once: numpy arrays + their tensor when cached; when streamed the Arrow
# batch, the buffer, the rows kept for the next buffer and the buffer's tensor.
CACHED_COPIES = 2
STREAM_COPIES = 4
EXECUTOR_SHARE = 0.5   # of spark.executor(.pyspark).memory: TensorFlow and the models need the rest
HOST_SHARE = 0.25      # of the host's RAM when Spark does not say: other workers share the host
LOCAL_SHARE = 0.5      # of the host's RAM, split over the W workers of a local master
MIN_BUDGET_MB = 16
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)b?\s*$", re.IGNORECASE)
_UNIT_MB = {"": 1 / (1 << 20), "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}


def size_mb(text: str | None) -> float | None:
    """A JVM-style size ("4g", "512m", "2048") in MiB; None when absent or unreadable. Plain numbers are
    MiB, as Spark reads spark.executor.memory."""
    if not text:
        return None
    m = _SIZE_RE.match(str(text))
    if not m:
        return None
    unit = m.group(2).lower()
    return float(m.group(1)) * (1.0 if unit == "" else _UNIT_MB[unit])


def default_budget_mb(executor_memory: str | None, host_ram_mb: float | None) -> int:
    """The budget when the spec leaves it out: half of the executor's memory when Spark says, else a
    quarter of the host's RAM (several workers may share a host), at least MIN_BUDGET_MB."""
    executor = size_mb(executor_memory)
    if executor:
        return max(MIN_BUDGET_MB, int(executor * EXECUTOR_SHARE))
    return max(MIN_BUDGET_MB, int((host_ram_mb or 4096) * HOST_SHARE))


def local_budget_mb(host_ram: float | None, workers: int) -> int:
    """A local master's default: its W workers are processes of this host and share half of its RAM."""
    return max(MIN_BUDGET_MB, int((host_ram or 4096) * LOCAL_SHARE / max(1, int(workers))))


def host_ram_mb() -> float | None:
    """Total RAM of this host (Linux and macOS), or None."""
    try:
        import os
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 20)
    except (ValueError, OSError, AttributeError):
        return None


def row_bytes(input_shape) -> int:
    """Bytes of one encoded row in memory: float32 features, float32 label, int64 _order."""
    return 4 * math.prod(int(d) for d in input_shape) + 4 + 8


def partition_rows(total: int, workers: int, partition: int) -> int:
    """Rows of partition `partition` when row i goes to partition i % workers."""
    return max(0, (int(total) - int(partition) + workers - 1) // workers)


@dataclass(frozen=True)
class PartitionPlan:
    partition: int
    train_rows: int
    val_rows: int
    row_bytes: int
    mode: str            # cached | streamed
    buffer_rows: int     # streamed: rows in the shuffle buffer; cached: the partition's rows

    @property
    def train_mb(self) -> float:
        return self.train_rows * self.row_bytes / (1 << 20)

    @property
    def val_mb(self) -> float:
        return self.val_rows * self.row_bytes / (1 << 20)


def plan_partition(rows: tuple[int, int], rb: int, budget_mb: float, partition: int = 0,
                   max_batch: int = 1) -> PartitionPlan:
    """Cached or streamed for one partition with (train rows, val rows) of `rb` bytes each.

    Raises FieldError(runtime.worker_memory_mb) when the budget cannot hold even one training batch."""
    train, val = (int(r) for r in rows)
    budget = float(budget_mb) * (1 << 20)
    if CACHED_COPIES * (train + val) * rb <= budget:
        return PartitionPlan(partition, train, val, rb, CACHED, train)
    buffer = int(budget // (STREAM_COPIES * rb))
    if buffer < max(1, int(max_batch)):
        need = math.ceil(STREAM_COPIES * max(1, int(max_batch)) * rb / (1 << 20))
        raise FieldError(FIELD, f"{budget_mb:g} MB holds {buffer} rows of {rb} bytes while streaming, fewer than "
                         f"one training batch of {max_batch} rows",
                         f"raise runtime.worker_memory_mb to at least {need} (or lower the batch_size values)")
    return PartitionPlan(partition, train, val, rb, STREAMED, min(buffer, max(train, 1)))


def plan_workers(rows: tuple[int, int], input_shape, workers: int, budget_mb: float,
                 max_batch: int = 1) -> list[PartitionPlan]:
    """One plan per partition of splits with (train rows, val rows) in all, partitioned i % workers."""
    rb = row_bytes(input_shape)
    return [plan_partition((partition_rows(rows[0], workers, w), partition_rows(rows[1], workers, w)), rb,
                           budget_mb, w, max_batch) for w in range(workers)]


def plan_lines(plans: list[PartitionPlan], budget_mb: float) -> list[str]:
    """What each worker will do, for the CLI."""
    lines = [f"worker memory budget {budget_mb:g} MB (runtime.worker_memory_mb)"]
    shown = plans if len(plans) <= 8 else [plans[0], plans[-1]]  # partitions differ by one row at most
    for p in shown:
        how = ("cached in memory" if p.mode == CACHED
               else f"streamed from local disk, shuffle buffer {p.buffer_rows} rows")
        lines.append(f"  worker {p.partition}: train {p.train_rows} rows ≈ {p.train_mb:.1f} MB, "
                     f"val {p.val_rows} rows ≈ {p.val_mb:.1f} MB: {how}")
    if len(shown) < len(plans):
        streamed = sum(p.mode == STREAMED for p in plans)
        lines.append(f"  {len(plans) - streamed} of {len(plans)} workers cached, {streamed} streamed")
    return lines


def max_batch_size(space) -> int:
    """The largest batch_size a config of the search space can have (64, the trainer's default, if unset)."""
    for p in space:
        if p.name != "batch_size":
            continue
        if p.kind == "choice":
            return max(int(v) for v in p.args)
        return int(max(p.args[:2]))
    return 64
