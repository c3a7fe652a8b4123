"""The train/validation split and the shuffle order on data nobody designed for them: duplicate rows, class
imbalance, odd column names, a user's own split column, different file layouts of the same rows."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cerebro_ops.data import reader
from tests.prepared_rows import prepared_split
from cerebro_ops.spark import prepare as prep
from cerebro_ops.core.spec import parse_spec
from cerebro_ops.store import Store

pytestmark = pytest.mark.spark
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

ODD = ["Sepal.Length", "petal width", "2nd-measure", "größe", "a`b"]


@pytest.fixture(scope="module")
def spark():
    from cerebro_ops.spark.session import get_spark

    return get_spark("local[2]")


def make_spec(source, numeric, categorical=(), label="label", task="binary", seed=0, **data):
    d = {"source": str(source), "label": label, "task": task, "numeric": list(numeric),
         "categorical": list(categorical), **data}
    return parse_spec({"name": "split", "seed": seed, "data": d, "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "grid", "space": {"learning_rate": [0.01]}}})


def split_frame(spark, spec, pdf: pd.DataFrame):
    """The split step's Spark frame over an in-memory table (internal column names, `_is_val`, `_copy`)."""
    names = prep.internal_names(spec)
    df = spark.createDataFrame(pdf.rename(columns=names))
    df, _ = prep._encode_label(spec, df, "_y")
    return prep._with_split(spec, df, names, len(pdf))


def split_of(spark, spec, pdf: pd.DataFrame) -> pd.DataFrame:
    """The pure split step on an in-memory table: the source rows with their `_is_val` flag."""
    names = prep.internal_names(spec)
    out = split_frame(spark, spec, pdf).select(*names.values(), "_is_val").toPandas()
    return out.rename(columns={i: c for c, i in names.items()})


def duplicate_heavy(rng, n_distinct: int, n: int) -> pd.DataFrame:
    """Few distinct rows, many copies each, and label noise: identical features with both labels."""
    base = pd.DataFrame({"a": rng.integers(0, 5, n_distinct).astype(float), "b": rng.integers(0, 3, n_distinct)})
    pdf = base.iloc[rng.integers(0, n_distinct, n)].reset_index(drop=True)
    pdf["label"] = ((pdf["a"] + rng.normal(0, 1.5, n)) > 2).astype(int)
    return pdf


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**31 - 1), n_distinct=st.integers(3, 40), n=st.integers(200, 1500),
       fraction=st.sampled_from([0.1, 0.2, 0.25, 0.5]))
def test_duplicates_spread_and_layout_does_not_matter(spark, seed, n_distinct, n, fraction):
    rng = np.random.default_rng(seed)
    pdf = duplicate_heavy(rng, n_distinct, n)
    spec = make_spec("unused.parquet", ["a"], ["b"], seed=seed % 1000, validation_fraction=fraction)
    one = split_of(spark, spec, pdf)
    # Another layout of the same rows: reversed order, different partitioning.
    other = split_of(spark, spec, pdf.iloc[::-1].reset_index(drop=True))
    key = ["label", "a", "b"]
    counts = lambda t: t.groupby(key + ["_is_val"]).size().sort_index()  # noqa: E731
    pd.testing.assert_series_equal(counts(one), counts(other))
    # Every group of identical rows (and each class) gets floor or ceil of its share: systematic sampling
    # within a (class, bucket) group; a group of k consecutive copies gets floor/ceil(k * fraction).
    for _, g in one.groupby(key):
        k, v = len(g), int(g["_is_val"].sum())
        assert np.floor(k * fraction) <= v <= np.ceil(k * fraction), (k, v)
    for _, g in one.groupby("label"):
        assert abs(g["_is_val"].sum() - len(g) * fraction) <= 1


def test_no_duplicate_is_kept_on_one_side(spark):
    """The old content-hash split put every copy of a row on one side: 0 % of validation rows had their
    (features, label) in training. A random split keeps almost all of them there when copies are many."""
    pdf = duplicate_heavy(np.random.default_rng(0), 30, 6000)
    out = split_of(spark, make_spec("unused.parquet", ["a"], ["b"]), pdf)
    key = ["label", "a", "b"]
    train_keys = set(map(tuple, out.loc[~out._is_val, key].to_numpy().tolist()))
    val = out[out._is_val]
    shared = np.mean([tuple(r) in train_keys for r in val[key].to_numpy().tolist()])
    assert len(val) == pytest.approx(0.2 * len(pdf), abs=60)
    assert shared > 0.99


def test_stratified_by_default_and_random_on_request(spark):
    rng = np.random.default_rng(3)
    n = 1000
    pdf = pd.DataFrame({"a": rng.normal(size=n), "label": (rng.random(n) < 0.07).astype(int)})  # 7 % positives
    strat = split_of(spark, make_spec("unused.parquet", ["a"]), pdf)
    for _, g in strat.groupby("label"):
        assert abs(g["_is_val"].sum() - 0.2 * len(g)) <= 1
    plain = split_of(spark, make_spec("unused.parquet", ["a"], stratify=False), pdf)
    assert abs(plain["_is_val"].sum() - 0.2 * n) <= 1  # one group: the overall share is still exact
    assert not strat["_is_val"].equals(plain["_is_val"])


def test_odd_column_names_end_to_end(spark, tmp_path):
    """Dots, spaces, dashes, leading digits, unicode and backticks: prepare, partition, Petastorm, raw rows."""
    rng = np.random.default_rng(5)
    n = 400
    pdf = pd.DataFrame({ODD[0]: rng.normal(size=n), ODD[1]: rng.integers(0, 4, n), ODD[2]: rng.normal(size=n),
                        ODD[3]: rng.choice(["klein", "groß"], n), ODD[4]: rng.choice([1, 2, 3], n)})
    pdf["species.name"] = rng.choice(["setosa", "versicolor", "virginica"], n)
    pdf.to_csv(tmp_path / "odd.csv", index=False)
    spec = make_spec(tmp_path / "odd.csv", ODD[:3], ODD[3:], label="species.name", task="multiclass")
    store = Store((tmp_path / "store").as_uri())
    prep.prepare(spark, spec, store)
    meta = prep.partition(spark, spec, store, 2)
    assert meta["label_classes"] == ["setosa", "versicolor", "virginica"]
    assert meta["categories"] == {"größe": ["groß", "klein"], "a`b": [1, 2, 3]}  # typed as in the source
    assert meta["feature_spans"] == {"Sepal.Length": [0, 1], "petal width": [1, 2], "2nd-measure": [2, 3],
                                     "größe": [3, 6], "a`b": [6, 10]}
    assert meta["raw_dtypes"]["a`b"] == "long" and meta["raw_dtypes"]["species.name"] == "string"
    x, y = reader.load_split(store.url(), "train", meta["input_shape"])
    assert x.shape == (meta["rows"]["train"], 10) and set(np.unique(y)) == {0.0, 1.0, 2.0}
    raw = reader.load_raw_split(store.url(), "val", meta)
    assert list(raw.columns) == ["species.name", *ODD] and len(raw) == meta["rows"]["val"]
    xp, yp = prepared_split(store.url(), "val", meta["input_shape"])
    # Raw rows and encoded rows line up: the label and the standardised first column agree row by row.
    assert np.array_equal(yp, raw["species.name"].map({"setosa": 0, "versicolor": 1, "virginica": 2}).to_numpy())
    s = meta["numeric_stats"]["Sepal.Length"]
    np.testing.assert_allclose(xp[:, 0], ((raw["Sepal.Length"] - s["mean"]) / s["std"]).astype(np.float32))


def test_users_own_validation_column(spark, tmp_path):
    rng = np.random.default_rng(9)
    n = 300
    pdf = pd.DataFrame({"x": rng.normal(size=n), "label": rng.choice(["no", "yes"], n),
                        "is_val": (np.arange(n) % 4 == 0).astype(int)})
    pdf.to_parquet(tmp_path / "v.parquet")
    spec = make_spec(tmp_path / "v.parquet", ["x"], validation_column="is_val")
    store = Store((tmp_path / "store").as_uri())
    meta = prep.prepare(spark, spec, store)
    assert meta["rows"] == {"train": 225, "val": 75}
    assert meta["split"] == {"method": "column", "column": "is_val"}
    raw = reader.load_raw_split(store.url(), "val", meta)
    assert sorted(raw["x"]) == sorted(pdf.loc[pdf.is_val == 1, "x"])


def test_order_is_dense_and_spreads_copies(spark):
    """The shuffle order is 0..n-1 without a global window, and copies of one row do not sit together."""
    pdf = duplicate_heavy(np.random.default_rng(1), 5, 3000)
    spec = make_spec("unused.parquet", ["a"], ["b"])
    df = split_frame(spark, spec, pdf)
    from pyspark.sql import functions as F

    ordered = prep._with_orders(df.withColumn("_is_val", F.lit(False)), spec.seed, {"train": len(pdf), "val": 0})
    plan = ordered._jdf.queryExecution().executedPlan().toString()
    assert "Window [" in plan and "SinglePartition" not in plan  # a global window would gather every row
    out = ordered.select("_order", "_y", "_n0", "_k0").toPandas().sort_values("_order")
    assert out["_order"].tolist() == list(range(len(pdf)))
    same_as_next = (out[["_y", "_n0", "_k0"]].to_numpy()[1:] == out[["_y", "_n0", "_k0"]].to_numpy()[:-1]).all(1)
    # 5 distinct feature rows x 2 labels: a shuffled order repeats the previous row ~1/7 of the time, a
    # sorted one almost always.
    assert same_as_next.mean() < 0.3


def test_split_takes_one_shuffle_and_numbers_each_rows_copies(spark):
    """The rank inside each (class, hash bucket) group and the copy ordinal come from one window: one shuffle
    of the data. Copies of a row are numbered 0..k-1 (the shuffle order hashes that ordinal)."""
    pdf = duplicate_heavy(np.random.default_rng(2), 7, 2000)
    split = split_frame(spark, make_spec("unused.parquet", ["a"], ["b"]), pdf)
    plan = split._jdf.queryExecution().executedPlan().toString()
    assert plan.count("Exchange hashpartitioning") == 1, plan
    out = split.select("_y", "_n0", "_k0", "_copy").toPandas()
    for _, copies in out.groupby(["_y", "_n0", "_k0"]):
        assert sorted(copies["_copy"]) == list(range(len(copies)))
