"""scikit-learn baselines for the real-data corpus, on any given train/validation split of raw rows.

Features are encoded independently of the pipeline (one-hot with unknown categories ignored, standardised
numerics, both fitted on the train rows), so a bug in the pipeline's encoding cannot hide in the baseline.
Each baseline is scored with the metric the study ranks by: accuracy (classification) or MAE / RMSE
(regression, on the label's own scale).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

def metric_name(study_metric: str) -> str:
    return study_metric.removeprefix("val_")


def score(metric: str, task: str, y_true, y_pred) -> float:
    """`metric` as the study computes it; `loss` is MSE for regression (the mlp builder's loss)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    m = metric_name(metric)
    if m == "accuracy":
        return float(np.mean(y_true == y_pred))
    err = y_true.astype(float) - y_pred.astype(float)
    if m == "mae":
        return float(np.mean(np.abs(err)))
    if m == "rmse":
        return float(np.sqrt(np.mean(err ** 2)))
    if m == "loss" and task == "regression":
        return float(np.mean(err ** 2))
    raise ValueError(f"no baseline scorer for metric {metric!r} ({task})")


def better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "max" else a < b


def encoder(numeric: list[str], categorical: list[str]):
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if numeric:
        parts.append(("num", StandardScaler(), list(numeric)))
    if categorical:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(categorical)))
    return ColumnTransformer(parts)


def _as_model_input(df: pd.DataFrame, numeric, categorical) -> pd.DataFrame:
    """Numerics as float, categoricals as strings (as the pipeline reads them: 11 and '11' are one value)."""
    out = pd.DataFrame({c: pd.to_numeric(df[c], errors="raise").astype(float) for c in numeric}, index=df.index)
    for c in categorical:
        out[c] = df[c].astype(str)
    return out


def baselines(task: str, metric: str, numeric, categorical, label: str,
              train: pd.DataFrame, val: pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """{baseline name: validation metric}: the constant baseline (majority class / train mean), a linear
    model (logistic regression / ridge) and histogram gradient boosting, all fitted on `train` only."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    numeric, categorical = list(numeric), list(categorical)
    xtr, xva = _as_model_input(train, numeric, categorical), _as_model_input(val, numeric, categorical)
    ytr, yva = train[label].to_numpy(), val[label].to_numpy()
    out: dict[str, float] = {}
    if task == "regression":
        ytr, yva = ytr.astype(float), yva.astype(float)
        out["mean"] = score(metric, task, yva, np.full(len(yva), ytr.mean()))
        models = {"ridge": Ridge(alpha=1.0),
                  "hist_gb": HistGradientBoostingRegressor(random_state=seed)}
    else:
        values, counts = np.unique(ytr, return_counts=True)
        out["majority"] = score(metric, task, yva, np.full(len(yva), values[np.argmax(counts)]))
        models = {"logistic": LogisticRegression(max_iter=5000),
                  "hist_gb": HistGradientBoostingClassifier(random_state=seed)}
    # One OpenMP thread: on a small shared machine HistGradientBoosting's thread pool oversubscribes the
    # CPUs and a one-second fit takes half a minute.
    with threadpool_limits(limits=1):
        for name, model in models.items():
            pipe = make_pipeline(encoder(numeric, categorical), model).fit(xtr, ytr)
            out[name] = score(metric, task, yva, pipe.predict(xva))
    return out


def constant_key(task: str) -> str:
    return "mean" if task == "regression" else "majority"


def best_learned(results: dict[str, float], task: str, direction: str) -> tuple[str, float]:
    """The best non-constant baseline: (name, value)."""
    learned = {k: v for k, v in results.items() if k != constant_key(task)}
    name = (max if direction == "max" else min)(learned, key=learned.get)
    return name, learned[name]


def random_split(df: pd.DataFrame, task: str, label: str, fraction: float, seed: int):
    """sklearn's train_test_split of the raw table, stratified by the label for classification."""
    from sklearn.model_selection import train_test_split

    strat = df[label] if task != "regression" else None
    return train_test_split(df, test_size=fraction, random_state=seed, stratify=strat)


def table_baselines(table, df: pd.DataFrame, train: pd.DataFrame, val: pd.DataFrame,
                    fraction: float = 0.2, seed: int = 0) -> dict:
    """Baselines of one corpus table on the study's split and on a random stratified split of the table."""
    args = (table.task, table.metric, table.numeric, table.categorical, table.label)
    rtrain, rval = random_split(df, table.task, table.label, fraction, seed)
    return {"same_split": baselines(*args, train, val, seed), "random_split": baselines(*args, rtrain, rval, seed)}
