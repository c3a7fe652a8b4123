"""The data reader reads through the store: a prepared partition written with pyarrow (no Spark) into a
file:// store (read by Petastorm) and into a memory:// store (read through the store's filesystem) gives the
same arrays, rows in _order."""
from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cerebro_ops.core.errors import StoreError
from cerebro_ops.data import reader
from cerebro_ops.store import Store, filesystem_for

# rows stored out of order: the reader sorts by _order
FEATURES = [[3.0, 30.0], [1.0, 10.0], [2.0, 20.0]]
ORDER = [2, 0, 1]
LABELS = [1.0, 0.0, 1.0]


@pytest.fixture(params=["file", "memory"])
def data(request, tmp_path):
    root = (tmp_path / "data").as_uri() if request.param == "file" else f"memory://reader-{uuid.uuid4().hex}"
    store = Store(root)
    table = pa.table({"features": pa.array(FEATURES, pa.list_(pa.float32())), "label": pa.array(LABELS),
                      "_order": pa.array(ORDER, pa.int64())})
    for split, part in (("train", 0), ("train", 1), ("val", 0)):
        with store.arrow_fs().open_output_stream(_mkdirs(store, split, f"_partition={part}", "part-0.parquet")) as f:
            pq.write_table(table, f)
    raw = pa.table({"dep_delay": [3, 1, 2], "origin": ["C", "A", "B"], "_order": ORDER})
    with store.arrow_fs().open_output_stream(_mkdirs(store, "raw", "val", "part-0.parquet")) as f:
        pq.write_table(raw, f)
    reader._CACHE.clear()
    yield store
    reader._CACHE.clear()
    if request.param == "memory":
        fs, path = filesystem_for(root)
        fs.rm(path, recursive=True)


def _mkdirs(store: Store, *parts: str) -> str:
    store.arrow_fs().create_dir(store.path(*parts[:-1]), recursive=True)
    return store.path(*parts)


def test_a_partition_is_read_in_order_as_read_only_arrays(data):
    x, y = reader.load_partition(data.uri, "train", 1, [2])
    assert x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(x, [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    np.testing.assert_array_equal(y, [0.0, 1.0, 1.0])
    assert not x.flags.writeable and not y.flags.writeable
    assert x.base.flags.writeable and x.base.nbytes == x.nbytes  # the reader's own base, for zero-copy tensors
    x2, _ = reader.load_partition(data.uri, "train", 1, [1, 2])  # another shape: a view of the cached rows
    assert x2.shape == (3, 1, 2) and np.shares_memory(x, x2)


def test_partitions_and_splits_are_listed_through_the_store(data):
    data.write_bytes("train/_SUCCESS", b"")
    assert reader.list_partitions(data.uri, "train") == [0, 1]
    assert reader.list_partitions(data.uri, "test") == []
    x, y = reader.load_split(data.uri, "train", [2])
    assert x.shape == (6, 2) and y.tolist() == [0.0, 1.0, 1.0] * 2


def test_the_raw_split_keeps_the_users_columns_in_order(data):
    df = reader.load_raw_split(data.uri, "val", {"raw_columns": {"dep_delay": "dep delay"}})
    assert list(df.columns) == ["dep delay", "origin"]
    assert df["dep delay"].tolist() == [1, 2, 3] and df["origin"].tolist() == ["A", "B", "C"]


def test_a_partition_outside_the_store_is_refused(data):
    with pytest.raises(StoreError):
        reader.load_partition(data.uri, "../elsewhere", 0, [2])
    with pytest.raises(StoreError):
        reader.list_partitions(data.uri, "/etc")


def test_partitions_stay_petastorm_readable_and_agree_with_the_reader(data):
    """The worker reads with pyarrow; the layout is still what Petastorm's make_batch_reader reads, row for row."""
    if data.process_local:
        pytest.skip("Petastorm opens URLs itself; a memory:// store lives in this process only")
    import warnings

    from petastorm import make_batch_reader

    x, y = reader.load_partition(data.uri, "train", 0, [2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The dummy pool reads in this thread. Petastorm 0.13.1's thread pool can end before its ventilator
        # thread hands out the only row group: no rows at all, 24 times in 300 reads on a loaded machine.
        with make_batch_reader(data.sub("train", "_partition=0").engine_url(), reader_pool_type="dummy",
                               num_epochs=1, schema_fields=["features", "label"]) as batches:
            rows = [(tuple(f), lab) for b in batches for f, lab in zip(b.features, b.label)]
    assert sorted(rows) == sorted((tuple(r), lab) for r, lab in zip(x.tolist(), y.tolist()))
    assert len(rows) == len(FEATURES)


def test_ragged_or_empty_feature_lists_are_refused_not_reshaped():
    import pyarrow as pa

    ok = reader._flat_lists(pa.chunked_array([pa.array([[1.0, 2.0]], pa.list_(pa.float32())),
                                              pa.array([[3.0, 4.0]], pa.list_(pa.float32()))]))
    np.testing.assert_array_equal(ok, [[1.0, 2.0], [3.0, 4.0]])
    assert ok.dtype == np.float32
    sliced = reader._flat_lists(pa.array([[9.0, 9.0], [5.0, 6.0]], pa.list_(pa.float64())).slice(1))
    np.testing.assert_array_equal(sliced, [[5.0, 6.0]])
    with pytest.raises(ValueError):
        reader._flat_lists(pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32())))
