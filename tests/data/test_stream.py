"""Streamed partitions: the shuffle buffer, the local copy, and training / evaluation equal to the cached path."""
from __future__ import annotations

import numpy as np
import pytest

from cerebro_ops.core.errors import FieldError
from cerebro_ops.core.memory_budget import CACHED, STREAMED, default_budget_mb, plan_partition, size_mb
from cerebro_ops.data.local_copy import ensure_local
from cerebro_ops.data.stream import PartitionStream
from cerebro_ops.keras.train_loop import row_order
from tests.data import tables

WIDTH = 4


@pytest.fixture(scope="module")
def part(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    x, y = tables.rows(1000, WIDTH, 3)
    tables.write_partition(str(root / "p"), x, y, np.arange(len(x)), group_rows=128, files=3)
    return str(root / "p"), x, y


def _stream(folder, buffer_rows):
    import glob
    return PartitionStream(sorted(glob.glob(f"{folder}/*.parquet")), (WIDTH,), buffer_rows)


def test_a_buffer_as_large_as_the_partition_gives_the_cached_rows_in_the_cached_order(part):
    folder, x, y = part
    chunks = list(_stream(folder, 5000).train_chunks(seed=7, batch_size=32))
    assert len(chunks) == 1
    xs, ys, order = chunks[0]
    cached = row_order(len(x), 7)  # the cached path's hop order over the rows in _order
    np.testing.assert_array_equal(xs[order], x[cached])
    np.testing.assert_array_equal(ys[order], y[cached])


def test_a_small_buffer_serves_every_row_once_in_full_batches_and_the_same_way_twice(part):
    folder, x, _ = part
    s = _stream(folder, 200)

    def served(seed):
        return [xs[o] for xs, _, o in s.train_chunks(seed=seed, batch_size=32)]
    a, b = served(5), served(5)
    assert all(np.array_equal(p, q) for p, q in zip(a, b)) and len(a) == len(b) > 1
    assert all(len(p) % 32 == 0 for p in a[:-1])
    got = np.concatenate(a)
    assert len(got) == len(x)
    key = lambda m: m[np.lexsort(m.T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(key(got), key(x))
    assert not np.array_equal(np.concatenate(served(6)), got)  # another hop seed, another order
    assert sum(len(c[0]) for c in s.eval_chunks()) == len(x)


def test_the_local_copy_is_made_once_per_host(part, tmp_path):
    folder, _, _ = part
    first = ensure_local("file://" + folder, str(tmp_path))
    again = ensure_local("file://" + folder, str(tmp_path))
    assert first.copied_bytes > 0 and again.copied_bytes == 0
    assert first.files == again.files and len(first.files) == 3


def test_the_budget_picks_the_mode_and_refuses_one_too_small_for_a_batch():
    assert plan_partition((1000, 100), 100, budget_mb=1).mode == CACHED
    plan = plan_partition((10_000_000, 100), 100, budget_mb=64, max_batch=256)
    assert plan.mode == STREAMED and plan.buffer_rows == 64 * (1 << 20) // 400
    with pytest.raises(FieldError) as err:
        plan_partition((10_000_000, 0), 4_000_000, budget_mb=16, max_batch=64)
    assert err.value.field == "runtime.worker_memory_mb" and "raise runtime.worker_memory_mb" in str(err.value)
    assert size_mb("4g") == 4096 and size_mb("512m") == 512 and size_mb("nonsense") is None
    assert default_budget_mb("8g", None) == 4096 and default_budget_mb(None, 16384) == 4096


def test_the_estimate_names_the_budget_when_a_worker_cannot_hold_one_batch(tmp_path):
    from pathlib import Path

    from cerebro_ops.core.spec import load_spec
    from cerebro_ops.data.estimate import check_memory, check_prepared

    text = Path("examples/dummy.yaml").read_text().replace("train:", "runtime:\n  worker_memory_mb: 16\ntrain:", 1)
    (tmp_path / "s.yaml").write_text(text)
    spec = load_spec(tmp_path / "s.yaml")
    lines = check_memory(spec, rows=(3_000_000, 100_000), input_shape=(8,))
    assert check_prepared(spec, {"rows": 20}) == []  # an older meta: nothing to say
    assert check_prepared(spec, {"rows": {"train": 3_000_000, "val": 100_000}, "input_shape": [8]}) == lines
    assert "16 MB" in lines[0] and "streamed from local disk" in lines[1] and len(lines) == 3
    with pytest.raises(FieldError) as err:
        check_memory(spec, rows=(3_000_000, 100_000), input_shape=(40_000,))
    assert err.value.field == "runtime.worker_memory_mb"
