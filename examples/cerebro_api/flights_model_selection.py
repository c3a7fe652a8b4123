"""Cerebro-API model selection on NYC flights 2013 (stands in for the original's Rossmann example).

Imports are the original's with `cerebro` → `cerebro_ops.compat`. The feature columns (9 numeric, 3 string)
are encoded by prepare (standardised / one-hot) into one input vector, so the model is a Sequential without
an Input layer: Keras sizes it on the first batch.

    .venv/bin/python -m cerebro_ops.cli make-data flights --rows 50000
    SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=$PWD/.venv/bin/python .venv/bin/python examples/cerebro_api/flights_model_selection.py
"""
import argparse

import tensorflow as tf
from pyspark.sql import SparkSession

from cerebro_ops.compat.backend import SparkBackend
from cerebro_ops.compat.keras import SparkEstimator
from cerebro_ops.compat.storage import LocalStore
from cerebro_ops.compat.tune import GridSearch, TPESearch, hp_choice, hp_loguniform, hp_quniform

NUMERIC = ["month", "day", "dep_time", "sched_dep_time", "dep_delay", "sched_arr_time", "distance", "hour", "minute"]
CATEGORICAL = ["carrier", "origin", "dest"]


def estimator_gen_fn(params):
    model = tf.keras.models.Sequential()
    for _ in range(int(params.get("num_layers", 2))):
        model.add(tf.keras.layers.Dense(int(params["hidden_units"]), activation="relu"))
    model.add(tf.keras.layers.Dense(1, activation="sigmoid"))
    return SparkEstimator(model=model, optimizer=tf.keras.optimizers.Adam(learning_rate=params["lr"]),
                          loss="binary_crossentropy", metrics=["accuracy"], batch_size=params["batch_size"])


def main(data=".cerebro/data/flights.parquet", store_path="/tmp/cerebro_flights", num_workers=2, num_epochs=3,
         tpe=False, num_models=6):
    spark = SparkSession.builder.master(f"local[{num_workers}]").appName("Cerebro flights").getOrCreate()
    backend = SparkBackend(spark_context=spark.sparkContext, num_workers=num_workers)
    store = LocalStore(prefix_path=store_path)
    df = spark.read.parquet(data)
    train_df, test_df = df.randomSplit([0.9, 0.1], seed=0)
    common = dict(backend=backend, store=store, estimator_gen_fn=estimator_gen_fn, num_epochs=num_epochs,
                  validation=0.2, evaluation_metric="accuracy", feature_columns=NUMERIC + CATEGORICAL,
                  label_columns=["delayed"], name="flights_api")
    if tpe:
        search_space = {"lr": hp_loguniform(1e-4, 1e-2), "hidden_units": hp_quniform(16, 128, 16),
                        "batch_size": hp_choice([256, 1024])}
        model_selection = TPESearch(search_space=search_space, num_models=num_models, parallelism=3, **common)
    else:
        search_space = {"lr": hp_choice([0.001, 0.003]), "hidden_units": hp_choice([32, 64]),
                        "batch_size": hp_choice([256, 1024])}
        model_selection = GridSearch(search_space=search_space, **common)
    model = model_selection.fit(train_df)
    for row in model.leaderboard:
        print(row["rank"], row["model_id"], row["val_accuracy"], row["params"])
    out = model.set_output_columns(["delayed_prob"]).transform(test_df.limit(1000))
    out.select("delayed", "delayed_prob").show(n=10)
    return model


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=".cerebro/data/flights.parquet")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--tpe", action="store_true")
    a = ap.parse_args()
    main(a.data, num_epochs=a.epochs, tpe=a.tpe)
