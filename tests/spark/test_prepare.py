"""prepare + partition on the example datasets, read back through the Petastorm reader."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cerebro_ops.data import reader
from cerebro_ops.example_data import make_example_data
from cerebro_ops.core.errors import DataError
from cerebro_ops.spark.prepare import partition, prepare
from cerebro_ops.core.spec import parse_spec
from cerebro_ops.store import Store

pytestmark = pytest.mark.spark

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="module")
def spark():
    from cerebro_ops.spark.session import get_spark

    return get_spark("local[2]")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    make_example_data("dummy", d)
    make_example_data("digits", d)
    return d


def dummy_spec(source, seed=0, **data):
    d = {"source": str(source), "label": "label", "numeric": ["x1", "x2", "x3", "x4"], "categorical": ["color"]}
    d.update(data)
    return parse_spec({"name": "dummy", "seed": seed, "data": d, "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "grid", "space": {"learning_rate": [0.01]}}})


def run(spark, spec, root, workers=2):
    """prepare and partition for `workers` workers (the spec's train.workers: prepare writes their partitions)."""
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, workers=workers))
    store = Store(root.as_uri())
    prepare(spark, spec, store)
    return store, partition(spark, spec, store, workers)


@pytest.fixture(scope="module")
def dummy(spark, data_dir, tmp_path_factory):
    return run(spark, dummy_spec(data_dir / "dummy.parquet"), tmp_path_factory.mktemp("s0"))


def read_all(store, meta):
    return {(split, w): reader.load_partition(store.url(), split, w, meta["input_shape"])
            for split in ("train", "val") for w in range(meta["workers"])}


def test_meta_and_counts(dummy):
    store, meta = dummy
    assert meta == store.read_json("meta.json")
    assert meta["input_shape"] == [8]
    assert meta["task"] == "binary" and meta["num_classes"] == 2 and meta["label_classes"] == [0, 1]
    assert meta["feature_names"] == ["x1", "x2", "x3", "x4", "color=blue", "color=green", "color=red",
                                     "color=<other>"]
    assert meta["categories"] == {"color": ["blue", "green", "red"]}
    assert set(meta["numeric_stats"]) == {"x1", "x2", "x3", "x4"}
    assert meta["seed"] == 0 and meta["source"].startswith("file://")
    assert meta["rows"]["train"] + meta["rows"]["val"] == 2000
    assert 0.15 < meta["rows"]["val"] / 2000 < 0.25
    assert meta["workers"] == 2
    for split in ("train", "val"):
        counts = meta["counts"][split]
        assert sum(counts) == meta["rows"][split] and max(counts) - min(counts) <= 1
        assert reader.list_partitions(store.url(), split) == [0, 1]
        assert [n for n in store.listdir(split) if n.startswith("_partition=")] == ["_partition=0", "_partition=1"]


def test_partition_files_hold_the_declared_columns(dummy):
    store, meta = dummy
    t = pq.read_table(store.path("train", "_partition=1"))
    assert set(t.column_names) == {"features", "label", "_order"}
    assert str(t.schema.field("features").type) == "list<element: float>"
    order = t.column("_order").to_numpy()
    assert (order % 2 == 1).all() and len(order) == meta["counts"]["train"][1]


def test_partition_files_are_written_in_order(spark, tmp_path):
    # prepared rows stored out of order: each partition file still comes out in _order, so a reader takes the
    # rows as stored, without a reordering copy of the partition
    store = Store(tmp_path.as_uri())
    rng = np.random.default_rng(0)
    rows = {"train": 600, "val": 200}
    for split, n in rows.items():
        order = rng.permutation(n)
        table = pa.table({"features": pa.array([[float(i), -float(i)] for i in order], pa.list_(pa.float32())),
                          "label": pa.array((order % 2).astype(float)), "_order": pa.array(order, pa.int64())})
        (tmp_path / "prepared" / split).mkdir(parents=True)
        for k, piece in enumerate((table.slice(0, n // 2), table.slice(n // 2))):
            pq.write_table(piece, tmp_path / "prepared" / split / f"part-{k}.parquet")
    store.write_json("meta.json", {"rows": rows})
    meta = partition(spark, None, store, 3)
    for split, n in rows.items():
        for w in range(3):
            files = [f for f in store.listdir(f"{split}/_partition={w}") if f.endswith(".parquet")]
            t = pq.read_table(store.path(split, f"_partition={w}", files[0]))
            assert len(files) == 1 and np.array_equal(t.column("_order").to_numpy(), np.arange(w, n, 3))
            x, _ = reader.load_partition(store.url(), split, w, [2])
            assert np.array_equal(x[:, 0], np.arange(w, n, 3))
    assert meta["counts"]["train"] == [200, 200, 200]


def test_reader_shapes_values_and_cache(dummy):
    store, meta = dummy
    x, y = reader.load_partition(store.url(), "train", 0, meta["input_shape"])
    assert x.shape == (meta["counts"]["train"][0], 8) and x.dtype == np.float32
    assert y.shape == (len(x),) and y.dtype == np.float32 and set(np.unique(y)) == {0.0, 1.0}
    assert np.allclose(x[:, 4:].sum(axis=1), 1.0)  # exactly one colour slot set; "other" never on train
    x2, y2 = reader.load_partition(store.url(), "train", 0, meta["input_shape"])
    assert x2 is x and y2 is y
    # Row order is _order: compare against the files sorted by hand.
    t = pq.read_table(store.path("train", "_partition=0")).to_pandas().sort_values("_order")
    assert np.array_equal(np.stack(t["features"].to_numpy()), x)
    xs, ys = reader.load_split(store.url(), "val", meta["input_shape"])
    assert xs.shape == (meta["rows"]["val"], 8) and ys.shape == (meta["rows"]["val"],)


def test_standardised_on_train(dummy):
    store, meta = dummy
    x, _ = reader.load_split(store.url(), "train", meta["input_shape"])
    assert np.allclose(x[:, :4].mean(axis=0), 0.0, atol=1e-4)
    assert np.allclose(x[:, :4].std(axis=0), 1.0, atol=1e-3)


def test_labels_match_source_rows(dummy, data_dir):
    """Decoding the features back gives rows of the source with the right label."""
    store, meta = dummy
    x, y = reader.load_split(store.url(), "val", meta["input_shape"])
    src = pd.read_parquet(data_dir / "dummy.parquet")
    st = meta["numeric_stats"]
    decoded = np.stack([x[:, i] * st[c]["std"] + st[c]["mean"] for i, c in enumerate(["x1", "x2", "x3", "x4"])], 1)
    source = src[["x1", "x2", "x3", "x4"]].to_numpy()
    for row, label in zip(decoded[:50], y[:50]):
        dist = np.abs(source - row).max(axis=1)
        assert dist.min() < 1e-4 and src["label"].iloc[dist.argmin()] == label


def test_same_seed_same_partitions_other_seed_differs(spark, dummy, data_dir, tmp_path):
    store, meta = dummy
    again_store, again = run(spark, dummy_spec(data_dir / "dummy.parquet"), tmp_path / "again")
    assert again["counts"] == meta["counts"] and again["numeric_stats"] == meta["numeric_stats"]
    a, b = read_all(store, meta), read_all(again_store, again)
    for key in a:
        assert np.array_equal(a[key][0], b[key][0]) and np.array_equal(a[key][1], b[key][1]), key
    other_store, other = run(spark, dummy_spec(data_dir / "dummy.parquet", seed=1), tmp_path / "other")
    xa, _ = reader.load_split(store.url(), "val", meta["input_shape"])
    xo, _ = reader.load_split(other_store.url(), "val", other["input_shape"])
    va = {tuple(r) for r in np.round(xa[:, :4] * 1000).astype(int)}
    vo = {tuple(r) for r in np.round(xo[:, :4] * 1000).astype(int)}
    assert len(va & vo) < 0.5 * len(va)  # mostly different validation rows


def test_partition_rerun_is_idempotent_and_refuses_other_workers(spark, data_dir, tmp_path):
    spec = dummy_spec(data_dir / "dummy.parquet")
    store, meta3 = run(spark, spec, tmp_path / "s", workers=3)
    assert len(meta3["counts"]["train"]) == 3 and sum(meta3["counts"]["train"]) == meta3["rows"]["train"]
    assert reader.list_partitions(store.url(), "train") == [0, 1, 2]
    assert partition(spark, spec, store, 3) == meta3
    with pytest.raises(DataError, match="prepared for 3"):
        partition(spark, spec, store, 2)
    assert reader.list_partitions(store.url(), "train") == [0, 1, 2]  # nothing rewritten


def test_csv_with_missing_values_and_string_labels(spark, data_dir, tmp_path):
    df = pd.read_parquet(data_dir / "dummy.parquet").head(400)
    df["label"] = np.where(df["label"] == 1, "yes", "no")
    df["x2"] = df["x2"].astype(object)
    df.loc[[0, 1, 2], "x2"] = "NA"  # Spark infers string for x2; prepare must parse it
    df.loc[3, "color"] = None
    df.loc[4, "label"] = None
    df.to_csv(tmp_path / "d.csv", index=False)
    store, meta = run(spark, dummy_spec(tmp_path / "d.csv"), tmp_path / "s")
    assert meta["label_classes"] == ["no", "yes"]
    # only the row without a label goes; the missing feature values are imputed, and counted
    assert meta["rows"]["train"] + meta["rows"]["val"] == 399
    summary = meta["summary"]
    assert (summary["rows_read"], summary["rows_used"], summary["dropped"]) == (400, 399, {"missing label": 1})
    assert {c: v["missing"] for c, v in summary["columns"].items()} == {"x2": 3, "color": 1}
    assert summary["columns"]["x2"]["action"].startswith("imputed with the train median")
    width = 8 + len(meta["missing_indicators"]) + len(meta["missing_categories"])
    assert ("x2=<missing>" in meta["feature_names"]) == ("x2" in meta["missing_indicators"])
    x, y = reader.load_split(store.url(), "train", meta["input_shape"])
    assert x.shape[1] == width and np.isfinite(x).all() and set(np.unique(y)) == {0.0, 1.0}


def test_digits_array_feature(spark, data_dir, tmp_path):
    spec = parse_spec({"name": "digits", "data": {"source": str(data_dir / "digits.parquet"), "label": "digit",
                                                  "task": "multiclass", "arrays": {"pixels": [8, 8, 1]}},
                       "model": {"builder": "cerebro_ops.builders:cnn"},
                       "search": {"method": "grid", "space": {"filters": [8]}}})
    store, meta = run(spark, spec, tmp_path / "s")
    assert meta["input_shape"] == [8, 8, 1]
    assert meta["num_classes"] == 10 and meta["label_classes"] == list(range(10))
    assert len(meta["feature_names"]) == 64 and meta["numeric_stats"] == {} and meta["categories"] == {}
    x, y = reader.load_partition(store.url(), "train", 1, meta["input_shape"])
    assert x.shape == (meta["counts"]["train"][1], 8, 8, 1) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(float(i) for i in range(10))
    xv, _ = reader.load_split(store.url(), "val", meta["input_shape"])
    assert xv.shape == (meta["rows"]["val"], 8, 8, 1)
    assert meta["rows"]["train"] + meta["rows"]["val"] == 1797
