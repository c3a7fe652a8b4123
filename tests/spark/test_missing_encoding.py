"""Property: for raw rows with random missingness, the encoding the champion applies to pandas.read_csv's
rows equals, row for row, the features prepare wrote with Spark (same imputation, indicators, <missing>
categories, true/false values, date parts), whatever share of each column is missing."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cerebro_ops.core.encoding import Encoding
from cerebro_ops.data.reader import load_raw_split
from tests.prepared_rows import prepared_split
from cerebro_ops.spark.prepare import prepare
from cerebro_ops.core.spec import parse_spec
from cerebro_ops.store import Store

pytestmark = [pytest.mark.spark, pytest.mark.slow]
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

ROWS = 60
COLUMNS = ("amount", "count", "colour", "flag", "seen at", "code")
TOKENS = ("", "NA", "NaN", "null", "N/A")


@pytest.fixture(scope="module")
def spark():
    from cerebro_ops.spark.session import get_spark

    return get_spark("local[2]")


def table(seed: int, shares: dict[str, float], token: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cols = {
        "rid": np.arange(ROWS, dtype=float),  # no gaps: keys the rows
        "amount": np.round(rng.normal(1000, 300, ROWS), 2).astype(object),
        "count": rng.integers(0, 9, ROWS).astype(object),
        "colour": rng.choice(["red", "green", "blue", "Türkis"], ROWS).astype(object),
        "flag": rng.choice(["true", "false", "True"], ROWS).astype(object),
        "seen at": (pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 10**6, ROWS), unit="min"))
        .strftime("%Y-%m-%dT%H:%M:%S").to_numpy(dtype=object),
        "code": rng.choice([11, 12, 34], ROWS).astype(object),
    }
    for c in COLUMNS:
        holes = rng.random(ROWS) < shares[c]
        cols[c][holes] = token if c != "amount" else rng.choice([np.inf, -np.inf, np.nan])
    cols["label"] = np.where(np.arange(ROWS) % 3 == 0, "late", "on time")
    return pd.DataFrame(cols)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), token=st.sampled_from(TOKENS),
       shares=st.fixed_dictionaries({c: st.sampled_from([0.0, 0.2, 0.5, 0.9]) for c in COLUMNS}))
def test_champion_encoding_equals_prepared_rows(spark, tmp_path_factory, seed, token, shares):
    tmp = tmp_path_factory.mktemp("prop")
    table(seed, shares, token).to_csv(tmp / "t.csv", index=False)
    spec = parse_spec({"name": "prop", "seed": seed,
                       "data": {"source": str(tmp / "t.csv"), "label": "label", "numeric": ["rid", "amount", "count"],
                                "categorical": ["colour", "flag", "code"], "datetime": ["seen at"]},
                       "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "grid", "space": {"learning_rate": [0.01]}}})
    store = Store((tmp / "s").as_uri())
    meta = prepare(spark, spec, store)
    user = pd.read_csv(tmp / "t.csv").set_index("rid", drop=False)
    enc = Encoding.from_meta(meta)
    assert meta["summary"]["rows_used"] == ROWS
    for split in ("train", "val"):
        x, _ = prepared_split(store.url(), split, meta["input_shape"])
        rid = load_raw_split(store.url(), split, meta)["rid"].to_numpy()
        np.testing.assert_array_equal(enc.encode(user.loc[rid]), x)
    # a column with gaps in train has its indicator / <missing> slot; one without has none
    for c in ("amount", "count"):
        assert (f"{c}=<missing>" in meta["feature_names"]) == (c in meta["missing_indicators"])
    assert ("colour=<missing>" in meta["feature_names"]) == ("colour" in meta["missing_categories"])
