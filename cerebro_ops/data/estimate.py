"""Before training: each worker's share of the data (rows × bytes per row), and whether it will be cached or
streamed under runtime.worker_memory_mb. A budget too small for one training batch is a FieldError here,
not an out-of-memory kill mid-epoch."""
from __future__ import annotations

from cerebro_ops.core.memory_budget import (default_budget_mb, host_ram_mb, local_budget_mb, max_batch_size, plan_lines,
                                            plan_workers)
from cerebro_ops.core.spec import StudySpec


def budget_mb(spec: StudySpec) -> tuple[float, str]:
    """(the budget, where it comes from) as far as the driver can tell."""
    if spec.runtime.worker_memory_mb is not None:
        return float(spec.runtime.worker_memory_mb), "runtime.worker_memory_mb"
    if spec.runtime.spark_master.startswith("local"):
        return float(local_budget_mb(host_ram_mb(), spec.train.workers)), "default: half of this host's RAM " \
            "over the workers of the local master"
    return float(default_budget_mb(None, host_ram_mb())), "default: a quarter of this host's RAM (on a cluster, " \
        "half of spark.executor.memory)"


def source_rows(spec: StudySpec) -> int | None:
    """Rows of the data source, from Parquet footers (a CSV is scanned); None when pyarrow cannot count them
    (the partition step checks again with the prepared counts)."""
    import pyarrow.dataset as ds

    from cerebro_ops.data.source import _fs_and_path

    try:
        fs, path = _fs_and_path(spec.data.source)
        fmt = "csv" if spec.data.resolved_format == "csv" else "parquet"
        return int(ds.dataset(path, filesystem=fs, format=fmt).count_rows())
    except Exception:  # an estimate only: never the reason a valid study cannot start
        return None


def check_prepared(spec: StudySpec, meta: dict) -> list[str]:
    """check_memory with the prepared row counts and input shape (nothing when meta lacks them)."""
    rows, shape = meta.get("rows"), meta.get("input_shape")
    if not isinstance(rows, dict) or not shape:
        return []
    return check_memory(spec, (int(rows.get("train", 0)), int(rows.get("val", 0))), shape)


def check_memory(spec: StudySpec, rows: tuple[int, int] | None = None, input_shape=(1,)) -> list[str]:
    """What each worker will do, as lines; FieldError(runtime.worker_memory_mb) when a worker cannot hold one
    batch. `rows` = (train, val) once prepared (meta["rows"]), else estimated from the source and
    data.validation_fraction; `input_shape` from meta, or before prepare the spec's (study.provisional_info)."""
    budget, source = budget_mb(spec)
    if rows is None:
        total = source_rows(spec)
        if total is None:
            return [f"worker memory budget {budget:g} MB [{source}]; the rows are counted when the data is prepared"]
        val = int(round(total * spec.data.validation_fraction))
        rows = (total - val, val)
    plans = plan_workers(rows, input_shape, spec.train.workers, budget, max_batch_size(spec.search.space))
    lines = plan_lines(plans, budget)
    lines[0] += f" [{source}]"
    return lines
