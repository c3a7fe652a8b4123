"""A worker's partition becomes a tensor over the reader's memory (no copy); any other array is copied."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cerebro_ops.data import reader
from cerebro_ops.keras.trainer import DataInfo, HopTrainer, _as_tensor, _writable_owner
from tests.keras.test_trainer import PARAMS, TINY


@pytest.fixture
def partition(tmp_path):
    """A 2-partition train split of 300 rows x 4 features, written as partition() writes it (in _order)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    part = tmp_path / "train" / "_partition=0"
    part.mkdir(parents=True)
    table = pa.table({"features": pa.array(list(x), type=pa.list_(pa.float32())), "label": y,
                      "_order": np.arange(300)})
    pq.write_table(table, part / "part-0.parquet")
    reader._CACHE.clear()
    yield tmp_path.as_uri(), x, y
    reader._CACHE.clear()


def test_a_partition_tensor_shares_the_readers_memory(partition):
    url, x_src, _ = partition
    x, _ = reader.load_partition(url, "train", 0, [4])
    owner = _writable_owner(x)
    assert owner is not None and not x.flags.writeable and x.ctypes.data % 64 == 0
    tensor = _as_tensor(x)
    np.testing.assert_array_equal(tensor.numpy(), x_src)
    owner.reshape(-1)[0] = 123.0  # only the reader holds the owner; here it proves the tensor reads the same bytes
    assert float(tensor[0, 0]) == 123.0


def test_an_array_its_holder_can_change_is_copied():
    a = np.arange(64, dtype=np.float32).reshape(16, 4)
    tensor = _as_tensor(a)
    a[0, 0] = -1.0
    assert float(tensor[0, 0]) == 0.0 and _writable_owner(a) is None


def test_a_misaligned_read_only_array_is_copied_not_shared():
    raw = bytearray(4 * 65)
    owner = np.frombuffer(memoryview(raw)[4:], dtype=np.float32)  # writable, 4 bytes past an aligned block
    owner[:] = np.arange(64, dtype=np.float32)
    view = owner.view()
    view.flags.writeable = False
    assert _writable_owner(view) is owner and view.ctypes.data % 64 != 0
    tensor = _as_tensor(view)  # sharing would abort in TensorFlow's kernels (unaligned memory)
    owner[1] = -1.0
    assert float(tensor[1]) == 1.0 and float(tensor[63]) == 63.0


def test_training_on_a_shared_partition_matches_training_on_a_copy(partition):
    url, _, _ = partition
    x, y = reader.load_partition(url, "train", 0, [4])
    runs = []
    for rows in (x, np.array(x)):  # the reader's read-only view (shared), then a writable copy (copied)
        trainer = HopTrainer(DataInfo(input_shape=(4,), task="binary", num_classes=2))
        ckpt = trainer.initial_checkpoint(TINY, PARAMS, seed=3)
        ckpt, stats = trainer.train(TINY, PARAMS, ckpt, rows, np.array(y), seed=5)
        runs.append((ckpt, stats["loss"]))
    assert runs[0] == runs[1]
    np.testing.assert_array_equal(x, reader.load_partition(url, "train", 0, [4])[0])  # training left it as is
