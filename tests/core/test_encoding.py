"""Encoding of raw rows from meta.json: values against hand-computed matrices, errors, decoding."""
from __future__ import annotations

import json
import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cerebro_ops.core.encoding import Encoding
from cerebro_ops.core.errors import DataError


def make_meta(**over):
    meta = {
        "task": "binary", "label": "y",
        "numeric": ["a", "flag"], "categorical": ["color", "n"], "arrays": {"v": [2]},
        "numeric_stats": {"a": {"mean": 1.0, "std": 2.0}, "flag": {"mean": 0.5, "std": 0.5}},
        "categories": {"color": ["blue", "red"], "n": [1, 3]},
        "label_classes": ["no", "yes"], "num_classes": 2, "input_shape": [11],
        "feature_spans": {"a": [0, 1], "flag": [1, 2], "color": [2, 5], "n": [5, 8], "v": [8, 10]},
        "raw_dtypes": {"a": "double", "flag": "boolean", "color": "string", "n": "long", "v": "array",
                       "y": "string"},
    }
    meta.update(over)
    return meta


META = make_meta(input_shape=[10])


def rows():
    return pd.DataFrame({
        "y": ["yes", "no", "yes"],  # ignored by encode
        "a": [3.0, -1.0, 0.1],
        "flag": [True, False, True],
        "color": ["red", "blue", "green"],  # green: unseen -> other
        "n": [3, 1, 2],  # 2: unseen -> other
        "v": [[1.5, 2.0], [0.0, -1.0], [1e-8, 3.0]],
        "extra": ["x", "y", "z"],
    })


def test_encode_matches_hand_computed_matrix():
    enc = Encoding.from_meta(META)
    x = enc.encode(rows())
    # a: (x-1)/2; flag: (b-0.5)/0.5; color: blue, red, other; n: 1, 3, other; v as is
    want = np.array([
        [1.0, 1.0, 0, 1, 0, 0, 1, 0, 1.5, 2.0],
        [-1.0, -1.0, 1, 0, 0, 1, 0, 0, 0.0, -1.0],
        [(0.1 - 1.0) / 2.0, 1.0, 0, 0, 1, 0, 0, 1, 1e-8, 3.0],
    ], dtype=np.float64).astype(np.float32)
    assert x.dtype == np.float32 and x.shape == (3, 10)
    np.testing.assert_array_equal(x, want)
    assert enc.feature_names[:5] == ("a", "flag", "color=blue", "color=red", "color=<other>")
    assert dict(enc.feature_spans) == {c: tuple(s) for c, s in META["feature_spans"].items()}


def test_standardisation_is_float64_then_float32():
    """(x - mean) / std in float64, cast once at the end: what Spark's double arithmetic + cast gives."""
    meta = make_meta(numeric=["a"], categorical=[], arrays={}, input_shape=[1],
                     numeric_stats={"a": {"mean": 0.1, "std": 0.3}}, feature_spans=None)
    meta.pop("feature_spans")
    enc = Encoding.from_meta(meta)
    vals = [0.7, 1e10 + 0.3, 1 / 3]
    x = enc.encode(pd.DataFrame({"a": vals}))
    want = np.float32([(v - 0.1) / 0.3 for v in vals])
    np.testing.assert_array_equal(x[:, 0], want)
    # differs from doing the arithmetic in float32 for at least one value
    f32 = (np.float32(vals) - np.float32(0.1)) / np.float32(0.3)
    assert not np.array_equal(f32, want)


def test_ints_strings_and_nullable_ints_are_numbers():
    enc = Encoding.from_meta(META)
    df = rows()
    df["a"] = pd.array([3, -1, 1], dtype="Int64")
    df["flag"] = [1, 0, " 1.0 "]
    x = enc.encode(df)
    np.testing.assert_array_equal(x[:, 0], np.float32([1.0, -1.0, 0.0]))
    np.testing.assert_array_equal(x[:, 1], np.float32([1.0, -1.0, 1.0]))


def test_categories_compare_in_their_own_type():
    meta = make_meta(numeric=[], arrays={}, categorical=["n", "b", "f"], input_shape=[8],
                     categories={"n": [1, 3], "b": [False, True], "f": [0.5]},
                     raw_dtypes={"n": "long", "b": "boolean", "f": "double", "y": "string"})
    meta.pop("feature_spans")
    enc = Encoding.from_meta(meta)
    df = pd.DataFrame({
        "n": pd.Series([3.0, "1", True, None], dtype=object),  # 3.0 == 3; "1" -> 1; True is 1
        "b": pd.Series([True, 1, "FALSE", None], dtype=object),  # 1 and "FALSE" are booleans too
        "f": pd.Series([0.5, "0.5", 0.25, float("nan")], dtype=object),
    })
    #         n=1 n=3 n=?  b=F b=T b=?  f=.5 f=?
    want = [[0, 1, 0, 0, 1, 0, 1, 0],
            [1, 0, 0, 0, 1, 0, 1, 0],
            [1, 0, 0, 1, 0, 0, 0, 1],
            [0, 0, 1, 0, 0, 1, 0, 1]]
    np.testing.assert_array_equal(enc.encode(df), np.float32(want))


def test_string_categories_take_strings_and_unseen_goes_to_other():
    enc = Encoding.from_meta(META)
    df = rows()
    df["color"] = ["RED", "red ", None]  # strings compare exactly; None is in no category
    x = enc.encode(df)
    np.testing.assert_array_equal(x[:, 2:5], np.float32([[0, 0, 1], [0, 0, 1], [0, 0, 1]]))


def test_array_feature_alone_reshapes_to_its_shape():
    meta = make_meta(numeric=[], categorical=[], arrays={"img": [2, 2]}, input_shape=[2, 2],
                     raw_dtypes={"img": "array", "y": "string"}, feature_spans={"img": [0, 4]})
    enc = Encoding.from_meta(meta)
    x = enc.encode(pd.DataFrame({"img": [np.array([[1, 2], [3, 4]]), [5, 6, 7, 8]]}))
    assert x.shape == (2, 2, 2)
    np.testing.assert_array_equal(x, np.float32([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]))


@pytest.mark.parametrize("column, value, problem", [
    ("a", None, "row 1 has no value"),
    ("a", float("nan"), "row 1 has no value"),
    ("a", "abc", "row 1 holds 'abc', which is not a number"),
    ("v", None, "row 1 has no value"),
    ("v", [1.0, float("nan")], "row 1 has a missing (NaN) element"),
    ("v", [1.0, 2.0, 3.0], "row 1 holds 3 values, not 2"),
    ("v", ["x", "y"], "row 1 holds ['x', 'y'], which is not a list of numbers"),
])
def test_bad_values_name_the_column_and_row(column, value, problem):
    enc = Encoding.from_meta(META)
    df = rows().astype({column: object})
    df.at[1, column] = value
    with pytest.raises(DataError) as err:
        enc.encode(df)
    assert err.value.field == column
    assert err.value.problem.startswith(problem), err.value.problem
    assert repr(column) in err.value.fix


def test_missing_column_is_named():
    enc = Encoding.from_meta(META)
    with pytest.raises(DataError) as err:
        enc.encode(rows().drop(columns=["color", "v"]))
    assert err.value.field == "color"
    assert "'v'" in err.value.problem
    assert "'a', 'flag', 'color', 'n', 'v'" in err.value.fix


def test_bad_meta_is_a_data_error():
    with pytest.raises(DataError, match="lacks raw_dtypes") as err:
        Encoding.from_meta({k: v for k, v in META.items() if k != "raw_dtypes"})
    assert err.value.field == "meta.json"
    with pytest.raises(DataError, match="feature_spans"):
        Encoding.from_meta({**META, "feature_spans": {**META["feature_spans"], "v": [8, 11]}})
    with pytest.raises(DataError, match="input_shape"):
        Encoding.from_meta({**META, "input_shape": [11]})


def test_to_dict_round_trips_through_json():
    enc = Encoding.from_meta(META)
    again = Encoding.from_meta(json.loads(json.dumps(enc.to_dict())))
    assert again == enc
    np.testing.assert_array_equal(again.encode(rows()), enc.encode(rows()))


def test_encode_labels():
    enc = Encoding.from_meta(META)
    np.testing.assert_array_equal(enc.encode_labels(pd.Series(["yes", "no", "yes"])), np.float32([1, 0, 1]))
    with pytest.raises(DataError) as err:
        enc.encode_labels(pd.Series(["yes", "maybe"]))
    assert err.value.field == "y" and "row 1 holds 'maybe'" in err.value.problem
    boolean = Encoding.from_meta({**META, "label_classes": [False, True]})
    np.testing.assert_array_equal(boolean.encode_labels([True, False]), np.float32([1, 0]))
    multi = Encoding.from_meta({**META, "task": "multiclass", "label_classes": [0, 2, 5], "num_classes": 3})
    np.testing.assert_array_equal(multi.encode_labels(pd.Series([5, 0, 2.0])), np.float32([2, 0, 1]))
    reg = Encoding.from_meta({**META, "task": "regression", "label_classes": [], "num_classes": 1})
    np.testing.assert_array_equal(reg.encode_labels(pd.Series([1.5, -2])), np.float32([1.5, -2.0]))


def test_decode_binary_keeps_the_labels_own_values():
    enc = Encoding.from_meta(META)
    out = enc.decode(np.float32([[0.9], [0.5], [0.1]]))
    assert list(out.columns) == ["prediction", "probability"]
    assert out["prediction"].tolist() == ["yes", "no", "no"]  # 0.5 is not above the threshold
    np.testing.assert_allclose(out["probability"], [0.9, 0.5, 0.1], rtol=1e-7)
    ints = Encoding.from_meta({**META, "label_classes": [0, 1]}).decode(np.float32([[0.7], [0.2]]))
    assert ints["prediction"].tolist() == [1, 0] and ints["prediction"].dtype == np.int64
    bools = Encoding.from_meta({**META, "label_classes": [False, True]}).decode(np.float32([[0.7], [0.2]]))
    assert bools["prediction"].tolist() == [True, False] and bools["prediction"].dtype == bool


def test_decode_multiclass_and_regression():
    multi = Encoding.from_meta({**META, "task": "multiclass", "label_classes": ["a", "b", "c"], "num_classes": 3})
    out = multi.decode(np.float32([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]]))
    assert list(out.columns) == ["prediction", "probability_a", "probability_b", "probability_c"]
    assert out["prediction"].tolist() == ["b", "a"]
    np.testing.assert_allclose(out["probability_c"], [0.2, 0.1], rtol=1e-6)
    assert multi.spark_result_type() == ("`prediction` string, `probability_a` double, `probability_b` double, "
                                         "`probability_c` double")
    reg = Encoding.from_meta({**META, "task": "regression", "label_classes": [], "num_classes": 1,
                              "raw_dtypes": {**META["raw_dtypes"], "y": "double"}})
    out = reg.decode(np.float32([[1.25], [-3.0]]))
    assert list(out.columns) == ["prediction"] and out["prediction"].tolist() == [1.25, -3.0]
    assert reg.spark_result_type() == "`prediction` double"
    assert len(reg.decode(np.zeros((0, 1), np.float32))) == 0


def test_raw_features_types_the_rows_for_a_signature():
    enc = Encoding.from_meta(META)
    df = rows()
    df["n"] = df["n"].astype("int32")
    raw = enc.raw_features(df)
    assert list(raw.columns) == ["a", "flag", "color", "n", "v"]
    assert raw.dtypes.astype(str).tolist() == ["float64", "bool", "object", "int64", "object"]
    assert raw["v"].tolist()[0] == [1.5, 2.0]
    assert math.isclose(raw["a"][2], 0.1)


@pytest.mark.spark
def test_reproduces_the_spark_prepare_step_bit_for_bit(tmp_path):
    """Raw validation rows encoded here == the features Spark wrote for them, for every kind of column."""
    from cerebro_ops.data import reader
    from tests.prepared_rows import prepared_split
    from cerebro_ops.spark import prepare as prep
    from cerebro_ops.spark.session import get_spark
    from cerebro_ops.core.spec import parse_spec
    from cerebro_ops.store import Store

    rng = np.random.default_rng(5)
    n = 400
    pdf = pd.DataFrame({
        "Sepal.Length": rng.normal(5.0, 1.3, n) * 1e3 + 0.1,  # double
        "count": rng.integers(-50, 50, n),  # long numeric
        "flag": rng.random(n) > 0.3,  # boolean numeric
        "größe": rng.choice(["S", "M", "L", "XL", "XXL"], n, p=[0.3, 0.3, 0.2, 0.15, 0.05]),  # top 3 + other
        "2nd-col": rng.choice([7, 8, 9, 10], n),  # long categorical
        "ok?": rng.random(n) > 0.5,  # boolean categorical
        "score": rng.choice([0.5, 1.0, 2.25], n),  # double categorical
        "vec x": list(rng.normal(size=(n, 3))),  # array<double>
        "label": rng.choice(["a", "b", "c"], n),
    })
    pdf.to_parquet(tmp_path / "d.parquet")
    spec = parse_spec({"name": "enc", "seed": 3, "data": {
        "source": str(tmp_path / "d.parquet"), "label": "label", "task": "multiclass",
        "numeric": ["Sepal.Length", "count", "flag"], "categorical": ["größe", "2nd-col", "ok?", "score"],
        "arrays": {"vec x": [3]}, "max_categories": 3},
        "model": {"builder": "cerebro_ops.builders:mlp"}, "search": {"method": "grid", "space": {"learning_rate": [0.1]}}})
    store = Store((tmp_path / "data").as_uri())
    meta = prep.prepare(get_spark("local[2]"), spec, store)
    meta = json.loads(store.read_bytes("meta.json"))  # as a later process reads it
    enc = Encoding.from_meta(meta)
    assert enc.feature_names == tuple(meta["feature_names"])
    for split in ("train", "val"):
        raw = reader.load_raw_split(store.url(), split, meta)
        x_spark, y_spark = prepared_split(store.url(), split, meta["input_shape"])
        x = enc.encode(raw)
        assert x.dtype == x_spark.dtype == np.float32 and x.shape == x_spark.shape
        np.testing.assert_array_equal(x, x_spark)
        np.testing.assert_array_equal(enc.encode_labels(raw["label"]), y_spark)
    other = enc.feature_spans["größe"][1] - 1
    assert x[:, other].sum() > 0  # some validation rows fall in the "other" slot


POOL = [None, float("nan"), np.nan, "NA", "", "true", "TRUE", " false ", True, False, np.bool_(True), 0, 1, -0.0,
        0.0, 1.0, 2, 2.0, 11.0, "11", "2", np.int64(3), np.float64(3.0), np.float32(2.5), 2.5, Decimal("1.0"),
        Decimal("1"), "a", "b", "Türkis", "<other>"]
CATEGORY_LISTS = [[False, True], [0, 1, 2, 3], [1.5, 2.5, 11.0], ["1", "11", "a", "true"], ["Türkis", "b"]]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.sampled_from(POOL), max_size=60), which=st.sampled_from(range(len(CATEGORY_LISTS))),
       missing_slot=st.booleans())
def test_one_hot_slots_equal_the_per_row_definition(values, which, missing_slot):
    """The slots, looked up once per distinct value, are the ones _key gives row by row (equal values of
    different types, Decimals whose text differs, NaN objects that are not equal to themselves)."""
    from cerebro_ops.core import encoding as enc

    cats = CATEGORY_LISTS[which]
    s = pd.Series(values, dtype=object)
    index, kind = enc._index_of(cats), enc._kind(cats)
    index.pop(None, None)
    other = len(cats) + int(missing_slot)
    missing = len(cats) if missing_slot else other
    expected = [missing if (k := enc._key(v, kind)) is None else index.get(k, other) for v in values]
    got = enc._one_hot(s, cats, missing_slot)
    assert got.shape == (len(values), other + 1)
    assert got.sum(axis=1).tolist() == [1.0] * len(values)
    assert got.argmax(axis=1).tolist() == expected


TEXT_POOL = [None, float("nan"), np.nan, pd.NA, "NA", "", "true", " false ", "11", "2", "a", "b", "Türkis", "<other>",
             "1", "n/a", "null"]


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.sampled_from(TEXT_POOL), min_size=64, max_size=300),
       which=st.sampled_from(range(len(CATEGORY_LISTS))), missing_slot=st.booleans())
def test_one_hot_of_a_text_column_equals_the_per_row_definition(values, which, missing_slot):
    """A text column of 64 rows or more is factorised before its slots are looked up: the same slots as _key
    gives row by row, missing tokens and NA objects included."""
    from cerebro_ops.core import encoding as enc

    cats = CATEGORY_LISTS[which]
    index, kind = enc._index_of(cats), enc._kind(cats)
    index.pop(None, None)
    other = len(cats) + int(missing_slot)
    missing = len(cats) if missing_slot else other
    expected = [missing if (k := enc._key(v, kind)) is None else index.get(k, other) for v in values]
    got = enc._one_hot(pd.Series(values, dtype=object), cats, missing_slot)
    assert got.sum(axis=1).tolist() == [1.0] * len(values)
    assert got.argmax(axis=1).tolist() == expected
