"""Cerebro's end-to-end style through the compat API: one keras.Input per feature column, a validation column.

A 2-config grid on the dummy data (x1..x4 numeric, color string) on local Spark, 2 epochs.
"""
import math

import numpy as np
import pytest
import tensorflow as tf

from cerebro_ops.compat.backend import SparkBackend
from cerebro_ops.compat.keras import SparkEstimator
from cerebro_ops.compat.storage import LocalStore
from cerebro_ops.compat.tune import GridSearch, hp_choice

pytestmark = pytest.mark.spark
NUMERIC = ["x1", "x2", "x3", "x4"]
COLOURS = 3  # blue, green, red: one-hot slots plus "other"


def estimator_gen_fn(params):
    """As in Cerebro's Rossmann example: named inputs per feature column, concatenated."""
    inputs = {c: tf.keras.Input(shape=(1,), name=c) for c in NUMERIC}
    inputs["color"] = tf.keras.Input(shape=(COLOURS + 1,), name="color")
    x = tf.keras.layers.Concatenate()(list(inputs.values()))
    x = tf.keras.layers.Dense(16, activation="relu")(x)
    out = tf.keras.layers.Dense(1, activation="sigmoid")(x)
    model = tf.keras.Model([inputs[c] for c in [*NUMERIC, "color"]], out)
    return SparkEstimator(model=model, optimizer=tf.keras.optimizers.Adam(learning_rate=params["lr"]),
                          loss="binary_crossentropy", metrics=["acc"], batch_size=params["batch_size"])


def test_grid_search_with_named_inputs_and_validation_column(tmp_path, monkeypatch):
    from pyspark.sql import SparkSession

    from cerebro_ops.example_data import make_example_data

    monkeypatch.setenv("CEREBRO_HOME", str(tmp_path / "home"))  # isolated MLflow db
    pdf = __import__("pandas").read_parquet(make_example_data("dummy", tmp_path / "data", rows=1200))
    pdf["is_val"] = np.arange(len(pdf)) % 4 == 0  # the user's own split: every 4th row validates
    spark = SparkSession.builder.master("local[2]").appName("named-inputs").getOrCreate()
    df = spark.createDataFrame(pdf)

    search = GridSearch(backend=SparkBackend(spark_context=spark.sparkContext, num_workers=2),
                        store=LocalStore(str(tmp_path / "store")), estimator_gen_fn=estimator_gen_fn,
                        search_space={"lr": hp_choice([0.01, 1e-5]), "batch_size": hp_choice([32])},
                        num_epochs=2, validation="is_val", evaluation_metric="acc",
                        feature_columns=[*NUMERIC, "color"], label_columns=["label"], name="named_inputs",
                        register=False)
    result = search.fit(df)

    assert set(result.metrics) == {"m000", "m001"}
    for h in result.metrics.values():
        assert {"train_loss", "val_loss", "val_acc"} <= set(h)
        assert len(h["val_acc"]) == 2 and all(math.isfinite(v) for v in h["val_acc"] + h["train_loss"])
    best = max(result.metrics, key=lambda m: result.metrics[m]["val_acc"][-1])
    assert result.best_model.model_id == best and result.best_model.params["lr"] == 0.01
    # the logistic rule is learnable (Bayes accuracy ~85%); 1e-5 barely moves from its start
    assert result.metrics[best]["val_acc"][-1] > 0.75
    losses = result.metrics[best]["train_loss"]
    assert losses[1] < losses[0]

    # the split is the user's column: 300 validation rows, 900 training rows
    meta = result.best_model._meta
    assert meta["rows"] == {"train": 900, "val": 300}
    assert meta["feature_spans"]["color"][1] - meta["feature_spans"]["color"][0] == COLOURS + 1

    # the best model scores rows on the driver through its named inputs
    model = result.keras()
    assert [t.name for t in model.inputs] == [*NUMERIC, "color"]
    val = pdf[pdf["is_val"]]
    out = result.set_output_columns(["p"]).transform(spark.createDataFrame(val)).toPandas()
    assert len(out) == 300 and out["p"].between(0, 1).all()
    acc = float(((out["p"] > 0.5).astype(int) == out["label"]).mean())
    assert acc == pytest.approx(result.metrics[best]["val_acc"][-1], abs=1e-6)
