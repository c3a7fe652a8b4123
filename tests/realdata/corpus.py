"""A small offline corpus of tables that look like data someone else collected, each from a fixed seed.

Every table is a pandas DataFrame written as CSV (UTF-8, header row, no index) with the quirks real
exports have and our own example data does not: many exact duplicate rows with noisy labels, column
names with dots, spaces, dashes, parentheses, leading digits and non-ASCII letters, string and unicode
class names, labels in the thousands, integer-coded categories and a long tail of rare categories.

`TABLES` maps a table name to its `Table`: how to generate it and how a study spec declares it.
Run `python -m tests.realdata.corpus DIR` to write the CSVs and print a summary.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Table:
    name: str                     # also the study name (a valid spec name)
    seed: int                     # numpy default_rng seed of the generator
    make: Callable[[np.random.Generator], pd.DataFrame]
    label: str
    task: str                     # binary | multiclass | regression
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    metric: str                   # what the study ranks by (a metric the mlp builder compiles)
    direction: str
    max_categories: int = 50
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        return self.make(np.random.default_rng(self.seed))

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / f"{self.name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.frame().to_csv(path, index=False, encoding="utf-8")
        return path

    @property
    def features(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def data_spec(self, source: str | Path, validation_fraction: float = 0.2) -> dict:
        return {"source": str(source), "format": "csv", "label": self.label, "task": self.task,
                "numeric": list(self.numeric), "categorical": list(self.categorical),
                "validation_fraction": validation_fraction, "max_categories": self.max_categories}


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# ------------------------------------------------------------------------------------------- a. survey

SURVEY_LEVELS = {
    "region": ["north", "south", "east", "west"],
    "gender": ["female", "male"],
    "age_group": ["18-24", "25-34", "35-49", "50-64", "65+"],
    "education": ["primary", "secondary", "bachelor", "master"],
    "employment": ["full-time", "part-time", "not working"],
    "smoker": ["never", "former", "current"],
}


def make_survey(rng: np.random.Generator, rows: int = 2400, profiles: int = 90) -> pd.DataFrame:
    """A questionnaire: few distinct answer profiles, each repeated many times (Zipf-like popularity),
    answered "yes"/"no" from a logistic model, then 15 % of the answers flipped (label noise), so most
    identical feature rows carry both labels."""
    cols = {name: rng.integers(0, len(levels), profiles) for name, levels in SURVEY_LEVELS.items()}
    household = rng.integers(1, 6, profiles)                 # coarse integer answers
    visits = rng.choice([0, 2, 4, 6, 12], profiles)
    weights = {name: rng.normal(0, 1.0, len(levels)) for name, levels in SURVEY_LEVELS.items()}
    logit = sum(weights[n][cols[n]] for n in SURVEY_LEVELS) + 0.45 * (household - 3) - 0.12 * (visits - 4) + 0.3
    p_yes = _sigmoid(1.3 * logit)
    popularity = 1.0 / np.arange(1, profiles + 1) ** 0.9
    pick = rng.choice(profiles, rows, p=popularity / popularity.sum())
    yes = rng.random(rows) < p_yes[pick]
    flip = rng.random(rows) < 0.15
    answer = np.where(yes ^ flip, "yes", "no")
    df = pd.DataFrame({n: np.asarray(SURVEY_LEVELS[n])[cols[n][pick]] for n in SURVEY_LEVELS})
    df.insert(2, "household_size", household[pick])
    df["visits_per_year"] = visits[pick]
    df["would_recommend"] = answer
    return df


# ------------------------------------------------------------------------------------------- b. odd names

SPECIES = ["Adélie", "Chinstrap", "Gentoo"]
ISLANDS = ["Torgersen", "Biscoe", "Dream"]


def make_odd_names(rng: np.random.Generator, rows: int = 1500) -> pd.DataFrame:
    """Iris/penguin-like clusters, 3 unbalanced string classes (one with an accent), measured columns named
    the way R, Excel and German lab sheets name them."""
    share = np.array([0.45, 0.35, 0.20])
    cls = rng.choice(3, rows, p=share)
    centres = np.array([[5.0, 0.3, 18.0, 3.4], [5.9, 1.3, 17.0, 4.2], [6.6, 2.0, 15.0, 5.1]])
    spread = np.array([0.45, 0.35, 1.4, 0.55])
    x = centres[cls] + rng.normal(0, 1, (rows, 4)) * spread
    island_p = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.05, 0.9, 0.05]])
    island = np.array([rng.choice(3, p=island_p[c]) for c in cls])
    mass = np.round(3000 + 400 * cls + rng.normal(0, 450, rows)).astype(int)
    return pd.DataFrame({
        "Sepal.Length": np.round(x[:, 0], 1),
        "petal width": np.round(x[:, 1], 2),
        "2nd-measure": np.round(x[:, 2], 1),
        "größe": np.round(x[:, 3], 2),
        "mass (g)": mass,
        "island name": np.asarray(ISLANDS)[island],
        "Species": np.asarray(SPECIES)[cls],
    })


# ------------------------------------------------------------------------------------------- c. prices

DISTRICTS = {"Altstadt": 1.45, "Nordend": 1.2, "Westend": 1.3, "Hafen": 1.0, "Gewerbepark": 0.7,
             "Südviertel": 0.9, "Bahnhof": 0.85, "Uni-Campus": 1.1}
CONDITION = {"poor": 0.75, "fair": 0.9, "good": 1.0, "excellent": 1.15}


def make_prices(rng: np.random.Generator, rows: int = 2000) -> pd.DataFrame:
    """Monthly rents in the thousands (≈1e3-5e4) from size, rooms, age, distance, district and condition,
    with multiplicative and additive noise."""
    area = np.round(rng.gamma(4.0, 22.0, rows) + 20, 1)
    rooms = np.clip(np.round(area / 30 + rng.normal(0, 0.7, rows)), 1, 8).astype(int)
    age = rng.integers(0, 90, rows)
    distance = np.round(rng.gamma(2.0, 4.0, rows) + 0.3, 2)
    district = rng.choice(list(DISTRICTS), rows, p=[0.1, 0.15, 0.1, 0.15, 0.1, 0.15, 0.15, 0.1])
    condition = rng.choice(list(CONDITION), rows, p=[0.1, 0.3, 0.45, 0.15])
    mult = np.array([DISTRICTS[d] for d in district]) * np.array([CONDITION[c] for c in condition])
    base = 140 * area + 900 * rooms - 45 * age - 180 * distance + 2500
    price = mult * base * rng.lognormal(0, 0.08, rows) + rng.normal(0, 800, rows)
    return pd.DataFrame({
        "living_area_m2": area, "rooms": rooms, "building_age": age, "distance_to_centre_km": distance,
        "district": district, "condition": condition, "price": np.round(np.clip(price, 1000, None), 2),
    })


# ------------------------------------------------------------------------------------------- d. churn

COMMON_CITIES = ["Lyon", "Porto", "Leeds", "Graz", "Turku", "Brno", "Gent", "Cork"]


def make_churn(rng: np.random.Generator, rows: int = 2000, rare: int = 120) -> pd.DataFrame:
    """Customer churn with an integer 0/1 label, an integer-coded category (tariff codes 11..34) and a city
    column with a long tail of rare towns (most seen once or twice), beyond max_categories: some
    validation rows carry a city no training row has."""
    tenure = rng.integers(1, 73, rows)
    charge = np.round(rng.uniform(15, 120, rows), 2)
    calls = rng.poisson(1.2, rows)
    tariff = rng.choice([11, 12, 21, 22, 34], rows, p=[0.3, 0.25, 0.2, 0.15, 0.1])
    payment = rng.choice(["direct debit", "card", "invoice", "cash"], rows, p=[0.45, 0.3, 0.15, 0.1])
    rare_towns = [f"Town-{i:02d}" for i in range(rare)]
    city = np.where(rng.random(rows) < 0.92, rng.choice(COMMON_CITIES, rows),
                    rng.choice(rare_towns, rows))
    z = (-0.045 * (tenure - 30) + 0.02 * (charge - 65) + 0.55 * (calls - 1.2)
         + np.select([tariff == 11, tariff == 34], [0.8, -0.9], 0.0)
         + np.where(payment == "invoice", 0.7, 0.0) + np.where(payment == "direct debit", -0.4, 0.0) - 0.9)
    churned = (rng.random(rows) < _sigmoid(z)).astype(int)
    return pd.DataFrame({"tenure_months": tenure, "monthly_charge": charge, "support_calls": calls,
                         "tariff_code": tariff, "payment method": payment, "city": city, "churned": churned})


# ------------------------------------------------------------------------------------------- registry

TABLES: dict[str, Table] = {t.name: t for t in [
    Table("rd_survey", 101, make_survey, label="would_recommend", task="binary",
          numeric=("household_size", "visits_per_year"), categorical=tuple(SURVEY_LEVELS),
          metric="val_accuracy", direction="max",
          notes="duplicate-heavy, 15 % label noise, yes/no label"),
    Table("rd_odd_names", 202, make_odd_names, label="Species", task="multiclass",
          numeric=("Sepal.Length", "petal width", "2nd-measure", "größe", "mass (g)"),
          categorical=("island name",), metric="val_accuracy", direction="max",
          notes="column names with . space - ( ) leading digit and ß; unicode class names"),
    Table("rd_prices", 303, make_prices, label="price", task="regression",
          numeric=("living_area_m2", "rooms", "building_age", "distance_to_centre_km"),
          categorical=("district", "condition"), metric="val_mae", direction="min",
          notes="label in the thousands"),
    Table("rd_churn", 404, make_churn, label="churned", task="binary",
          numeric=("tenure_months", "monthly_charge", "support_calls"),
          categorical=("tariff_code", "payment method", "city"), metric="val_accuracy", direction="max",
          max_categories=10, notes="integer 0/1 label, integer-coded category, rare cities beyond the top 10",
          extra={"unseen_column": "city", "unseen_value": "Ouagadougou"}),
]}


def duplicate_summary(df: pd.DataFrame, features: list[str], label: str) -> dict:
    """How duplicate-heavy a table is: distinct feature rows, distinct (features, label) rows, and the share
    of rows whose feature combination carries both labels."""
    groups = df.groupby(features, sort=False)[label].nunique()
    mixed = df.set_index(features).index.isin(groups[groups > 1].index)
    return {"rows": len(df), "distinct_features": len(groups),
            "distinct_rows": len(df.drop_duplicates([*features, label])),
            "rows_with_mixed_labels": float(np.mean(mixed))}


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "realdata_corpus")
    for t in TABLES.values():
        df = t.frame()
        path = t.write(out)
        line = f"{t.name:14s} {len(df):5d} rows  label={t.label!r} ({t.task})  -> {path}"
        if t.task == "regression":
            line += f"  label range {df[t.label].min():.0f}..{df[t.label].max():.0f}"
        else:
            line += f"  classes {df[t.label].value_counts(normalize=True).round(3).to_dict()}"
        print(line)
        if t.name == "rd_survey":
            print("   ", duplicate_summary(df, t.features, t.label))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
