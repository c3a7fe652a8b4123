"""Data problems only Spark sees (they need every row): each raises DataError naming field and fix."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from cerebro_ops.core.errors import DataError
from cerebro_ops.data.source import check_source
from cerebro_ops.spark.prepare import prepare
from cerebro_ops.core.spec import parse_spec
from cerebro_ops.store import Store

pytestmark = pytest.mark.spark

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="module")
def spark():
    from cerebro_ops.spark.session import get_spark

    return get_spark("local[2]")


def make_spec(source, task="binary", numeric=("x1", "x2"), arrays=None, **data_keys):
    data = {"source": str(source), "label": "label", "task": task, "numeric": list(numeric), **data_keys}
    if arrays:
        data["arrays"] = arrays
    return parse_spec({"name": "t", "data": data, "model": {"builder": "m:f"},
                       "search": {"method": "grid", "space": {"lr": [0.1]}}})


def expect(spark, spec, tmp_path, field, *fragments):
    with pytest.raises(DataError) as ei:
        prepare(spark, spec, Store((tmp_path / "store").as_uri()))
    assert ei.value.field == field and ei.value.fix
    msg = str(ei.value)
    assert f"'{field}'" in msg and "Fix:" in msg
    for f in fragments:
        assert f in msg, msg


def test_drop_that_empties_the_table(spark, tmp_path):
    # Neither column is entirely null (check_source passes) but every row misses one of them.
    df = pd.DataFrame({"x1": [1.0, None, 3.0, None], "x2": [None, 2.0, None, 4.0], "label": [0, 1, 0, 1]})
    df.to_parquet(tmp_path / "d.parquet")
    spec = make_spec(tmp_path / "d.parquet", missing="drop")
    check_source(spec)
    expect(spark, spec, tmp_path, "data.missing", "would lose 4 of 4 labelled rows", "data.missing: impute")


def test_no_label_left(spark, tmp_path):
    # NaN is not null to the pre-flight's pyarrow: only the pass over the rows sees that no row has a label.
    df = pd.DataFrame({"x1": [1.0, 2.0, 3.0], "x2": [1.0, 2.0, 3.0], "label": [np.nan] * 3})
    df.to_parquet(tmp_path / "d.parquet")
    expect(spark, make_spec(tmp_path / "d.parquet"), tmp_path, "data.label", "no row of", "has a label",
           "3 rows read")


def test_single_class_after_dropping(spark, tmp_path):
    df = pd.DataFrame({"x1": np.arange(20.0), "x2": np.arange(20.0), "label": [1] * 19 + [0]})
    df.loc[19, "x1"] = None  # the only 0 is dropped with its missing value
    df.to_parquet(tmp_path / "d.parquet")
    spec = make_spec(tmp_path / "d.parquet", missing="drop", max_dropped_share=1.0)
    expect(spark, spec, tmp_path, "data.label", "single class", "1")


def test_binary_with_three_classes(spark, tmp_path):
    df = pd.DataFrame({"x1": np.arange(30.0), "x2": np.arange(30.0), "label": ["a", "b", "c"] * 10})
    df.to_parquet(tmp_path / "d.parquet")
    expect(spark, make_spec(tmp_path / "d.parquet"), tmp_path, "data.task", "3 distinct values", "multiclass")


def test_uneven_array_shape(spark, tmp_path):
    pixels = [np.zeros(4) for _ in range(10)] + [np.zeros(3), np.zeros(3), np.zeros(5)]
    df = pd.DataFrame({"pixels": pixels, "label": [0, 1] * 6 + [0]})
    df.to_parquet(tmp_path / "d.parquet")
    spec = make_spec(tmp_path / "d.parquet", numeric=(), arrays={"pixels": [2, 2]})
    check_source(spec)  # the type is right; only the row lengths are wrong
    expect(spark, spec, tmp_path, "data.arrays.pixels", "4 elements", "2 rows with 3", "1 rows with 5")


def test_non_numeric_csv_values_seen_by_spark(spark, tmp_path):
    df = pd.DataFrame({"x1": ["1", "2", "oops", "NA"], "x2": [1, 2, 3, 4], "label": [0, 1, 0, 1]})
    df.to_csv(tmp_path / "d.csv", index=False)
    expect(spark, make_spec(tmp_path / "d.csv"), tmp_path, "data.numeric.x1", "'oops'")


def test_missing_column_seen_by_spark(spark, tmp_path):
    pd.DataFrame({"x1": [1.0, 2.0], "label": [0, 1]}).to_parquet(tmp_path / "d.parquet")
    expect(spark, make_spec(tmp_path / "d.parquet"), tmp_path, "data.numeric.x2", "['x2']", "'x1'")


def test_unreadable_source(spark, tmp_path):
    (tmp_path / "d.parquet").write_text("not parquet")
    expect(spark, make_spec(tmp_path / "d.parquet"), tmp_path, "data.source", "Spark cannot read")
