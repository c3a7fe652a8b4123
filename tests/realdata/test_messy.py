"""Messy tables end to end (tests/realdata/messy.py): missing values in most rows, NA tokens, ±Inf, labels in
the thousands or with gaps, true/false text, integer codes with gaps, dates, thousands of categories.

For each table, a study runs through the CLI code path (`study.run`) on 80 % of the rows, written as CSV;
the other 20 % are kept as raw holdout rows, read back with pandas.read_csv as a user would, NaNs and all:
- rows trained on = rows with a label, and prepare's summary accounts for every row and every missing value,
  counted as pandas.read_csv counts them (the same NA tokens on both sides), in meta.json and in MLflow;
- the registered champion (mlflow.pyfunc.load_model) answers every holdout row;
- its metric on the holdout rows with a label is within a stated tolerance of scikit-learn's
  HistGradientBoosting trained on the same labelled rows (it handles NaN and categories natively).

Tolerances (2 configs x 4 epochs of an MLP against gradient boosting), measured (champion vs
HistGradientBoosting on the holdout): rents MAE 407 vs 389 EUR (1.05x), churn accuracy 0.726 vs 0.713,
weather MAE 4.68 vs 2.40 hPa (1.95x). Rents and churn: MAE at most 1.4x, accuracy at most 0.05 below.
Weather: pressure follows weather systems that last days, which trees cut out of the date parts (without
the date, HistGradientBoosting's MAE is 4.25; predicting the mean, 5.81): at most 2.2x gradient boosting
and 1.25x gradient boosting without the date columns. Each tolerance leaves room for seed noise but not
for a lost row or a wrong imputation, which cost far more (before missing values were imputed, the rents
study trained on 11 % of its rows and the champion refused 88 % of the holdout).
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from .harness import BUILDER, SPACE, WORKERS
from .messy import MESSY

pytestmark = [pytest.mark.slow, pytest.mark.spark]

MAE_RATIO = {"rd_rents": 1.4, "rd_weather": 2.2}
MAE_RATIO_WITHOUT_DATES = 1.25  # weather: against gradient boosting that does not see the date columns
ACCURACY_GAP = 0.05
EPOCHS = 4


class MessyRun:
    def __init__(self, table, tmp, spark):
        from cerebro_ops import study
        from cerebro_ops.core.spec import load_spec

        self.table = table
        train, holdout = table.frames()
        self.csv = tmp / f"{table.name}.csv"
        train.to_csv(self.csv, index=False)
        holdout_csv = tmp / "holdout.csv"
        holdout.to_csv(holdout_csv, index=False)
        self.rows = pd.read_csv(self.csv)          # what the user gave the study
        self.holdout = pd.read_csv(holdout_csv)    # what the user asks the champion about
        spec = {"name": table.name, "seed": 0, "data": table.data_spec(self.csv.resolve()),
                "model": {"builder": BUILDER}, "search": {"method": "grid", "space": SPACE},
                "train": {"epochs": EPOCHS, "workers": WORKERS, "metric": table.metric,
                          "direction": table.direction},
                "runtime": {"store": (tmp / "store").resolve().as_uri(),
                            "tracking_uri": f"sqlite:///{(tmp / 'mlflow.db').resolve()}",
                            "experiment": f"messy-{table.name}"}}
        path = tmp / "spec.yaml"
        path.write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
        self.spec = load_spec(path)
        self.result = study.run(self.spec, run_id="r1", spark=spark)
        self.state = study.load_run(self.spec, "r1")

    @property
    def meta(self) -> dict:
        return self.state.meta

    def champion(self):
        import mlflow.pyfunc

        from cerebro_ops.mlflow.tracking import Tracker
        with Tracker(self.spec.runtime.tracking_uri, self.spec.runtime.experiment).mlflow_context():
            return mlflow.pyfunc.load_model(f"models:/{self.spec.name}@champion")


@pytest.fixture(scope="module")
def messy(tmp_path_factory, spark):
    runs: dict = {}

    def get(name: str) -> MessyRun:
        if name not in runs:
            runs[name] = MessyRun(MESSY[name], tmp_path_factory.mktemp(name), spark)
        return runs[name]

    return get


def _missing(s: pd.Series) -> pd.Series:
    """Missing as prepare counts it: NaN/None, and ±Inf in a numeric column."""
    out = s.isna()
    if pd.api.types.is_float_dtype(s):
        out |= np.isinf(s)
    return out


def _datetime_parts(s: pd.Series) -> pd.DataFrame:
    t = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
    return pd.DataFrame({"y": t.dt.year, "m": t.dt.month, "d": t.dt.day, "w": t.dt.dayofweek, "h": t.dt.hour})


def hist_gb(table, train: pd.DataFrame, test: pd.DataFrame) -> np.ndarray:
    """scikit-learn's HistGradientBoosting on the same raw rows, with its native NaN and categorical support:
    numerics as floats (±Inf as NaN), dates as their parts, categories as pandas categories (the most
    frequent 200 kept: its limit is 255)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    def features(df: pd.DataFrame) -> pd.DataFrame:
        cols = {c: pd.to_numeric(df[c], errors="coerce").replace([np.inf, -np.inf], np.nan) for c in table.numeric}
        for c in table.datetime:
            cols.update({f"{c}.{k}": v for k, v in _datetime_parts(df[c]).items()})
        for c in table.categorical:
            top = train[c].astype(str).value_counts().index[:200]
            values = df[c].astype(str).where(df[c].notna())
            cols[c] = pd.Categorical(values.where(values.isin(top), "<other>"), categories=[*top, "<other>"])
        return pd.DataFrame(cols, index=df.index)

    model = (HistGradientBoostingRegressor if table.task == "regression" else HistGradientBoostingClassifier)(
        categorical_features="from_dtype", random_state=0)
    with threadpool_limits(limits=1):
        model.fit(features(train), train[table.label])
        return model.predict(features(test))


def score(table, y_true, y_pred) -> float:
    if table.task == "regression":
        return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))
    return float(np.mean(np.asarray(y_true).astype(str) == np.asarray(y_pred).astype(str)))


NAMES = list(MESSY)


@pytest.mark.parametrize("name", NAMES)
def test_every_row_with_a_label_is_trained_on_and_accounted_for(messy, name):
    run = messy(name)
    t, rows, summary = run.table, run.rows, run.meta["summary"]
    labelled = rows[~_missing(rows[t.label])]
    assert summary["rows_read"] == len(rows)
    assert summary["dropped"] == {"missing label": len(rows) - len(labelled)}
    assert summary["rows_used"] == len(labelled) == run.meta["rows"]["train"] + run.meta["rows"]["val"]
    # each column's missing values, counted as pandas.read_csv sees them (NA tokens, empty cells, ±Inf)
    want = {c: int(_missing(labelled[c]).sum()) for c in t.features if _missing(labelled[c]).any()}
    assert {c: v["missing"] for c, v in summary["columns"].items()} == want
    assert sum(_missing(labelled[c]).any() for c in t.features) >= 3
    assert _missing(labelled[t.features]).any(axis=1).mean() > 0.75  # most rows miss something
    for c, info in summary["columns"].items():
        assert info["action"].startswith("own category" if c in t.categorical else "imputed" if c in t.numeric
                                          else "parts imputed"), (c, info)


def test_prepare_summary_names_what_it_did(messy):
    """Rents: the constant column and the 1,500 streets are reported, and the summary is in MLflow."""
    from mlflow.tracking import MlflowClient

    from cerebro_ops.core.prepare_summary import summary_lines
    from cerebro_ops.mlflow.tracking import Tracker

    run = messy("rd_rents")
    summary = run.meta["summary"]
    assert sorted(summary["constant"]) == ["listed on.hour", "vat rate"]  # dates without a time: hour 0
    assert summary["categories_cut"]["street"]["kept"] == 50
    assert summary["categories_cut"]["street"]["distinct"] > 1000
    lines = summary_lines(summary)
    assert lines[0].startswith(f"rows read {len(run.rows)}, used {summary['rows_used']}")
    assert any("'vat rate': constant" in line for line in lines)
    assert any(line.startswith("'street':") and "top 50 kept" in line for line in lines)
    with Tracker(run.spec.runtime.tracking_uri, run.spec.runtime.experiment).mlflow_context():
        client = MlflowClient()
        parent = client.get_run(run.state.mlflow_parent)
        assert parent.data.metrics["rows_read"] == len(run.rows)
        assert parent.data.metrics["rows_used"] == summary["rows_used"]
        assert parent.data.metrics["rows_dropped_missing_label"] == summary["dropped"]["missing label"]
        assert parent.data.params["missing_policy"] == "impute"
        path = client.download_artifacts(parent.info.run_id, "prepare_summary.json")
        with open(path, encoding="utf-8") as f:
            assert json.load(f) == summary


@pytest.mark.parametrize("name", NAMES)
def test_champion_answers_every_raw_holdout_row_near_hist_gradient_boosting(messy, name):
    run = messy(name)
    t, holdout = run.table, run.holdout
    assert _missing(holdout[t.features]).any(axis=1).mean() > 0.75
    predictions = run.champion().predict(holdout)
    assert len(predictions) == len(holdout)
    assert predictions["prediction"].notna().all()
    labelled = ~_missing(holdout[t.label])
    ours = score(t, holdout.loc[labelled, t.label], predictions.loc[labelled, "prediction"])
    train = run.rows[~_missing(run.rows[t.label])]
    theirs = score(t, holdout.loc[labelled, t.label], hist_gb(t, train, holdout.loc[labelled]))
    print(f"{name}: champion {ours:.4g}, HistGradientBoosting {theirs:.4g} on {int(labelled.sum())} holdout rows")
    if t.task == "regression":
        # in the label's own units: the predictions and the reported metric are not standardised values
        assert predictions["prediction"].mean() == pytest.approx(train[t.label].mean(), rel=0.2)
        assert ours <= MAE_RATIO[name] * theirs, (ours, theirs)
        if t.datetime and name == "rd_weather":
            no_dates = dataclasses.replace(t, datetime=())
            undated = score(t, holdout.loc[labelled, t.label], hist_gb(no_dates, train, holdout.loc[labelled]))
            assert ours <= MAE_RATIO_WITHOUT_DATES * undated, (ours, undated)
        mean_mae = score(t, holdout.loc[labelled, t.label], np.full(int(labelled.sum()), train[t.label].mean()))
        assert ours < 0.9 * mean_mae, (ours, mean_mae)  # rents 0.43x, weather 0.81x the MAE of the mean
        best = run.result["leaderboard"][0]["val_mae"]
        assert 0.5 * ours < best < 2 * ours, (best, ours)  # the leaderboard speaks in label units too
    else:
        assert ours >= theirs - ACCURACY_GAP, (ours, theirs)


def test_champion_refuses_only_what_it_cannot_read(messy):
    """A missing column, or a value that is not a number, is one clear error naming the column; a row of
    nothing but missing values is answered."""
    from cerebro_ops.core.errors import DataError

    run = messy("rd_churn_gaps")
    model = run.champion()
    t = run.table
    empty = pd.DataFrame({c: [None] for c in t.features})
    assert len(model.predict(empty)) == 1
    with pytest.raises(Exception) as ei:
        model.predict(run.holdout.drop(columns=["support calls"]).head(3))
    assert "support calls" in str(ei.value)
    bad = run.holdout.head(3).assign(**{"monthly charge": ["12.5", "lots", None]})
    with pytest.raises(DataError) as ei:
        model.unwrap_python_model().predict(None, bad)
    assert ei.value.field == "monthly charge" and "'lots'" in str(ei.value)


def test_encoding_of_user_rows_equals_what_prepare_wrote(messy):
    """Row for row, the champion's encoding of pandas.read_csv rows equals the features prepare wrote
    (the same imputation, indicators, categories, booleans and date parts), to float32."""
    from cerebro_ops.core.encoding import Encoding
    from cerebro_ops.data.reader import load_raw_split
    from tests.prepared_rows import prepared_split
    from cerebro_ops.study import repository

    run = messy("rd_weather")  # time_hour is unique per airport: (time, origin) keys the rows
    data = repository(run.spec, "r1").store.url("data")
    enc = Encoding.from_meta(run.meta)
    raw = load_raw_split(data, "val", run.meta)
    x, _ = prepared_split(data, "val", run.meta["input_shape"])
    keyed = run.rows.assign(_k=run.rows["time_hour"].astype(str) + run.rows["origin"].astype(str))
    keys = raw["time_hour"].astype(str).str.replace(" ", "T") + "Z" + raw["origin"].astype(str)
    user_rows = keyed.drop_duplicates("_k").set_index("_k").loc[keys.to_numpy()]
    np.testing.assert_allclose(enc.encode(user_rows), x, rtol=1e-6, atol=1e-6)
    assert not math.isnan(float(x.sum()))
