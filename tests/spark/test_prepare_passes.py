"""prepare and partition in few Spark jobs: the statistics, categories and the order's bucket sizes come from one
pass (learn.py), and what that pass learns is what separate queries give, to the last bit."""
from __future__ import annotations

import math
import os
import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cerebro_ops.core.errors import DataError
from cerebro_ops.core.spec import parse_spec
from cerebro_ops.spark import learn as learn_mod
from cerebro_ops.spark import missing
from cerebro_ops.data import reader
from cerebro_ops.spark import prepare as prep
from cerebro_ops.store import Store
from tests.prepared_rows import prepared_split

pytestmark = pytest.mark.spark
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="module")
def spark():
    from cerebro_ops.spark.session import get_spark

    return get_spark("local[2]")


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    """Numbers, a categorical and a datetime column with gaps (NaN, None, ±Inf) and a 3-class label."""
    rng = np.random.default_rng(seed)
    amount = rng.normal(100, 30, rows)
    amount[rng.random(rows) < 0.1] = np.nan
    amount[:3] = [np.inf, -np.inf, np.nan]
    colour = rng.choice(["red", "green", "blue", "Türkis", "TRUE", "true"], rows).astype(object)
    colour[rng.random(rows) < 0.15] = None
    when = (pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 10**6, rows), unit="min")).astype(str)
    when = when.to_numpy(dtype=object)
    when[rng.random(rows) < 0.1] = None
    return pd.DataFrame({"amount": amount, "count": rng.integers(0, 9, rows), "colour": colour, "when": when,
                         "holdout": np.arange(rows) % 5 == 0, "label": rng.choice(["a", "b", "c"], rows)})


def spec_for(source, **data) -> object:
    d = {"source": str(source), "label": "label", "task": "multiclass", "numeric": ["amount", "count"],
         "categorical": ["colour"], "datetime": ["when"], "max_categories": 3, **data}
    return parse_spec({"name": "passes", "seed": 5, "data": d, "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "grid", "space": {"learning_rate": [0.01]}}})


def jobs_of(spark, fn):
    """(fn's result, the number of Spark jobs it ran)."""
    group = f"passes-{time.time_ns()}"
    spark.sparkContext.setJobGroup(group, group)
    try:
        out = fn()
    finally:
        spark.sparkContext.setJobGroup("", "")
    return out, len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


def prepared(store: Store, meta: dict) -> dict:
    """{split: (features, labels)} of both splits' encoded rows, in _order."""
    return {split: prepared_split(store.url(), split, meta["input_shape"]) for split in ("train", "val")}


def test_prepare_runs_seven_jobs_and_partition_none(spark, tmp_path):
    """Reading the schema, counting rows and missing values, learning (statistics + categories + bucket
    sizes), and the four writes, two of them straight into the workers' partitions: partition has no job."""
    table(400).to_parquet(tmp_path / "t.parquet")
    spec = spec_for(tmp_path / "t.parquet")
    store = Store((tmp_path / "s").as_uri())
    meta, n_prepare = jobs_of(spark, lambda: prep.prepare(spark, spec, store))
    assert meta["workers"] == spec.train.workers
    meta, n_partition = jobs_of(spark, lambda: prep.partition(spark, spec, store, spec.train.workers))
    assert (n_prepare, n_partition) == (7, 0)
    assert meta["rows"]["train"] + meta["rows"]["val"] == 400
    assert sum(meta["counts"]["train"]) == meta["rows"]["train"]
    assert reader.list_partitions(store.url(), "train") == list(range(spec.train.workers))
    assert not store.exists("prepared")  # the encoded rows are written once, as the workers read them


def test_a_local_session_shuffles_into_two_partitions_and_prepares_the_data_it_did_with_eight(spark, tmp_path):
    """Fewer shuffle partitions only change how prepare's windows and counts are scheduled: the categories,
    counts, split and order are those of the 8 partitions used before; the statistics' sums run over other
    partitions, so they may differ in their last bits."""
    table(700, seed=3).to_parquet(tmp_path / "t.parquet")
    spec = spec_for(tmp_path / "t.parquet")
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
    metas, rows = [], []
    for n, partitions in enumerate(("2", "8")):
        store = Store((tmp_path / f"s{n}").as_uri())
        with prep._sql_conf(spark, {"spark.sql.shuffle.partitions": partitions}):
            metas.append(prep.prepare(spark, spec, store))
        rows.append(prepared(store, metas[-1]))
    stats = [m.pop("numeric_stats") for m in metas]
    assert metas[0] == metas[1] and metas[0]["categories"]["colour"]
    assert stats[0].keys() == stats[1].keys() and len(stats[0]) >= 2
    for column, got in stats[0].items():
        for key, value in got.items():
            assert value == pytest.approx(stats[1][column][key], rel=1e-12), (column, key)
    for split in ("train", "val"):
        np.testing.assert_array_equal(rows[0][split][1], rows[1][split][1])  # the labels, in the same order
        np.testing.assert_allclose(rows[0][split][0], rows[1][split][0], rtol=1e-6)


def test_shuffle_partitions_are_two_for_any_local_master_and_eight_elsewhere():
    from cerebro_ops.spark.session import shuffle_partitions

    assert {shuffle_partitions(m) for m in ("local", "local[3]", "local[2,4]", "local[*]", "local[*,2]")} == {2}
    assert shuffle_partitions("spark://10.0.0.1:7077") == shuffle_partitions("yarn") == 8


def test_on_checked_comes_after_every_check_and_before_any_write(spark, tmp_path):
    """prepare's hook for what must not exist for bad data (the study opens MLflow there): called once the
    data passed its checks, while nothing is written yet; never for data that fails them."""
    table(300).to_parquet(tmp_path / "t.parquet")
    store = Store((tmp_path / "s").as_uri())
    seen = []
    written = lambda: tuple(store.exists(p) for p in ("train", "raw", "meta.json"))  # noqa: E731
    prep.prepare(spark, spec_for(tmp_path / "t.parquet"), store, on_checked=lambda: seen.append(written()))
    assert seen == [(False, False, False)]
    assert store.exists("train") and store.exists("meta.json")
    unlabelled = table(50).assign(label=None)
    unlabelled.to_parquet(tmp_path / "u.parquet")
    with pytest.raises(DataError, match="data.label"):
        prep.prepare(spark, spec_for(tmp_path / "u.parquet"), Store((tmp_path / "u").as_uri()),
                     on_checked=lambda: seen.append("bad data"))
    assert seen == [(False, False, False)]


@pytest.mark.parametrize("split", [{}, {"validation_column": "holdout"}])
def test_bucket_sizes_from_the_learning_pass_give_the_counted_order(spark, tmp_path, monkeypatch, split):
    """With buckets of 150 rows, 1,000 rows take several order buckets per split: the sizes read from the
    learning pass's row give the same _order (and so the same files) as the separate count of before, in one
    job less."""
    table(1000, seed=3).to_parquet(tmp_path / "t.parquet")
    spec = spec_for(tmp_path / "t.parquet", **split)
    monkeypatch.setattr(prep, "ROWS_PER_GROUP", 150)
    runs = {}
    for name, limit in (("learnt", prep.MAX_BUCKET_COUNTS), ("counted", 0)):
        monkeypatch.setattr(prep, "MAX_BUCKET_COUNTS", limit)
        store = Store((tmp_path / name).as_uri())
        meta, jobs = jobs_of(spark, lambda: prep.prepare(spark, spec, store))  # noqa: B023
        runs[name] = (meta, jobs, prepared(store, meta))
    (meta, jobs, rows), (meta_c, jobs_c, rows_c) = runs["learnt"], runs["counted"]
    assert prep._order_buckets(meta["rows"])["train"] > 1 and jobs == jobs_c - 1
    assert {k: v for k, v in meta.items() if k != "source"} == {k: v for k, v in meta_c.items() if k != "source"}
    for s in ("train", "val"):
        np.testing.assert_array_equal(rows[s][0], rows_c[s][0])
        np.testing.assert_array_equal(rows[s][1], rows_c[s][1])
        assert len(rows[s][1]) == meta["rows"][s]


def test_learning_pass_equals_separate_queries(spark, tmp_path):
    """The union of the statistics' aggregation and the category counts collects what each gives alone."""
    from pyspark.sql import functions as F

    table(600, seed=7).to_parquet(tmp_path / "t.parquet")
    spec = spec_for(tmp_path / "t.parquet")
    names = prep.internal_names(spec)
    with prep._sql_conf(spark, prep.PREPARE_SQL_CONF):
        df = prep._select_and_cast(spec, prep._read_spark(spark, spec), names)
        df = df.filter(F.col("_y").isNotNull())
        df, classes = prep._encode_label(spec, df, "_y")
        df = prep._with_split(spec, df, names, 600).cache()
        try:
            got = learn_mod.learn(spec, df, names)
            alone = missing.read_stats(spec, names, df.agg(*missing.stats_aggs(spec, names)).collect()[0])
            counts = learn_mod.category_counts(spec, df.filter(~F.col("_is_val")), names).collect()
            categories = learn_mod.read_categories(spec, counts, names)
        finally:
            df.unpersist()
    assert (got["stats"], got["label_stats"], got["indicators"], got["rows"]) == alone
    assert (got["categories"], got["missing_slots"], got["cardinality"]) == categories
    assert got["categories"]["colour"] == sorted(got["categories"]["colour"]) and len(got["categories"]["colour"]) == 3
    assert got["missing_slots"] == ["colour"] and "amount" in got["indicators"]


def simulated_val_rows(rng, total: int, fraction: float, strata: int) -> int:
    """The validation rows _with_split gives: per group (stratum x hash bucket) of n rows with offset o, the
    ranks k with floor(o + (k + 1) f) > floor(o + k f)."""
    groups = strata * max(1, math.ceil(total / prep.ROWS_PER_GROUP))
    sizes = np.bincount(rng.integers(0, groups, total), minlength=groups)
    val = 0
    for n in sizes:
        o = rng.random()
        k = np.arange(n)
        val += int(np.sum(np.floor(o + (k + 1) * fraction) > np.floor(o + k * fraction)))
    return val


@settings(max_examples=60, deadline=None)
@given(total=st.integers(1, 400_000), fraction=st.sampled_from([0.05, 0.1, 0.2, 0.25, 0.3, 0.5]),
       strata=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_order_candidates_hold_the_bucket_numbers_of_any_seeded_split(total, fraction, strata, seed):
    spec = spec_for("unused.parquet", validation_fraction=fraction)
    val = simulated_val_rows(np.random.default_rng(seed), total, fraction, strata)
    candidates = prep._order_candidates(spec, total, list(range(strata)))
    assert candidates is not None
    for split, b in prep._order_buckets({"train": total - val, "val": val}).items():
        assert b == 1 or b in candidates[split], (split, b, candidates)


def test_prepare_builds_its_columns_without_asking_the_jvm_for_call_sites(spark, tmp_path, monkeypatch):
    """The session turns pyspark's DataFrame debugging off: with it on, every function that builds a column
    first asks the JVM for the active session, a setting and the origin of the call (about 8 py4j round trips),
    more than half of prepare's calls."""
    from py4j.clientserver import ClientServerConnection
    import pyspark.errors.utils as debugging

    table(400).to_parquet(tmp_path / "t.parquet")
    spec = spec_for(tmp_path / "t.parquet")
    calls = {"n": 0}
    send = ClientServerConnection.send_command

    def counted(self, command):
        calls["n"] += 1
        return send(self, command)

    def round_trips() -> int:
        calls["n"] = 0
        prep.prepare(spark, spec, Store((tmp_path / f"s{time.time_ns()}").as_uri()))
        return calls["n"]

    monkeypatch.setattr(ClientServerConnection, "send_command", counted)
    assert spark.conf.get("spark.python.sql.dataFrameDebugging.enabled") == "false"
    monkeypatch.setattr(debugging, "_enable_debugging_cache", None)  # read again from this session
    quiet = round_trips()
    monkeypatch.setattr(debugging, "_enable_debugging_cache", True)
    debugged = round_trips()
    assert debugging.is_debugging_enabled() and quiet < 0.6 * debugged


def test_well_shaped_arrays_add_no_job_and_a_wrong_shape_on_an_unlabelled_row_is_dropped_with_it(spark, tmp_path):
    """The array sizes are counted in the missing values' pass: prepare of a table with an array column runs
    the same seven jobs, and only a labelled row with another number of elements is an error (test_prepare_errors
    has that one); an unlabelled row goes, whatever its array holds."""
    rows = table(300)
    rows["pixels"] = [np.arange(4.0) + i for i in range(len(rows))]
    rows.loc[rows.index[:2], "label"] = None
    rows.at[rows.index[0], "pixels"] = np.arange(3.0)
    rows.to_parquet(tmp_path / "t.parquet")
    spec = spec_for(tmp_path / "t.parquet", arrays={"pixels": [2, 2]})
    meta, jobs = jobs_of(spark, lambda: prep.prepare(spark, spec, Store((tmp_path / "s").as_uri())))
    assert jobs == 7
    assert meta["rows"]["train"] + meta["rows"]["val"] == 298
