"""Port of cerebro-system's examples/dummy_model_selection.py: only the imports changed (cerebro → cerebro_ops.compat),
plus `learning_rate=` (Keras 3 dropped `lr=`) and synthetic data instead of the libsvm sample file.

    SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=$PWD/.venv/bin/python .venv/bin/python -m examples.cerebro_api.dummy_model_selection
"""
from cerebro_ops.compat.backend import SparkBackend
from cerebro_ops.compat.keras import SparkEstimator

# datas storage for intermediate data and model artifacts.
from cerebro_ops.compat.storage import LocalStore, HDFSStore  # noqa: F401

# Model selection/AutoML methods.
from cerebro_ops.compat.tune import GridSearch, RandomSearch, TPESearch  # noqa: F401

# Utility functions for specifying the search space.
from cerebro_ops.compat.tune import hp_choice, hp_uniform, hp_quniform, hp_loguniform, hp_qloguniform  # noqa: F401

import numpy as np
import tensorflow as tf
from pyspark.sql import SparkSession

NUM_FEATURES = 20


def make_data(spark, rows=2000, seed=0):
    """Synthetic binary task on a `features` array column (stands in for the libsvm sample file)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, NUM_FEATURES))
    w = rng.normal(size=NUM_FEATURES)
    y = (x @ w + 0.5 * rng.normal(size=rows) > 0).astype(int)
    return spark.createDataFrame([(x[i].tolist(), int(y[i])) for i in range(rows)], "features array<double>, label int")


# Define estimator generating function.
# Input: Dictionary containing parameter values
# Output: SparkEstimator
def estimator_gen_fn(params):
    model = tf.keras.models.Sequential()
    model.add(tf.keras.layers.Input(shape=(NUM_FEATURES,), name='features'))
    model.add(tf.keras.layers.Dense(100))
    model.add(tf.keras.layers.Dense(1))
    model.add(tf.keras.layers.Activation('sigmoid'))

    optimizer = tf.keras.optimizers.Adam(learning_rate=params['lr'])
    loss = 'binary_crossentropy'

    estimator = SparkEstimator(
        model=model,
        optimizer=optimizer,
        loss=loss,
        metrics=['acc'],
        batch_size=params['batch_size'])

    return estimator


def main(store_path='/tmp/cerebro', num_workers=2, num_epochs=3, rows=2000, lrs=(0.01, 0.001, 0.0001),
         batch_sizes=(32, 128), evaluation_metric='acc', register=True):
    spark = SparkSession.builder.master(f"local[{num_workers}]").appName("Cerebro Example").getOrCreate()

    backend = SparkBackend(spark_context=spark.sparkContext, num_workers=num_workers)
    store = LocalStore(prefix_path=store_path)

    # # first you need to set variables: export CLASSPATH=`$HADOOP_HOME/bin/hadoop classpath --glob`
    # store = HDFSStore(prefix_path='hdfs://master:9000/tmp/cerebro')

    df = make_data(spark, rows)
    train_df, test_df = df.randomSplit([0.8, 0.2], seed=0)

    # Define dictionary containing the parameter search space.
    search_space = {
        'lr': hp_choice(list(lrs)),
        'batch_size': hp_choice(list(batch_sizes)),
    }

    # Instantiate grid search model selection object.
    model_selection = GridSearch(backend=backend, store=store, estimator_gen_fn=estimator_gen_fn,
                                 search_space=search_space, num_epochs=num_epochs, validation=0.25,
                                 evaluation_metric=evaluation_metric, feature_columns=['features'],
                                 label_columns=['label'], register=register)

    # Perform model selection. Returns best model.
    model = model_selection.fit(train_df)

    # Inspect best model training history.
    print(model.get_history())

    # Perform inference using the best model and Spark DataFrame.
    output_df = model.set_output_columns(['label_predicted']).transform(test_df)
    output_df.select('label', 'label_predicted').show(n=10)

    # Convert the best model to Keras and perform inference using numpy data.
    keras_model = model.keras()
    print(keras_model.predict(np.ones([1, NUM_FEATURES], dtype=np.float32), verbose=0))
    return model, output_df


if __name__ == "__main__":
    main()
