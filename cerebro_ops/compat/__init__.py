"""Cerebro-compatible Python API: port a `cerebro` script by changing its imports only.

    from cerebro_ops.compat.backend import SparkBackend          # was: cerebro.backend
    from cerebro_ops.compat.storage import LocalStore, HDFSStore  # was: cerebro.storage
    from cerebro_ops.compat.keras import SparkEstimator           # was: cerebro.keras
    from cerebro_ops.compat.tune import GridSearch, RandomSearch, TPESearch, hp_choice, ...  # was: cerebro.tune

Underneath, ``.fit(df)`` writes the DataFrame to the store as Parquet, builds a StudySpec and runs the same
core path as ``cerebro-ops run`` (prepare → partition → MOP epochs → select → register, tracked in MLflow).
Differences from the original, on purpose:
- the best model respects the metric's direction (accuracy / auc are maximised; the original took the minimum);
- the feature columns are encoded into one feature vector (numeric columns standardised, string columns
  one-hot encoded with an "other" slot, array/vector columns passed through); the model takes it either as
  a single input or, as in Cerebro's examples, as one ``keras.Input(name=<feature column>)`` per column
  (a numeric column has shape (1,), a string column one slot per category plus one);
- ``validation`` is a fraction (a seeded split) or, as in Cerebro, the name of a column of true/false (or
  1/0) flags, true = validation row;
- the estimator's batch size must either be a search-space key named ``batch_size`` or not depend on the
  other parameters (it is read once on the driver).
"""

from cerebro_ops.spark.session import spark_env as _spark_env

# Ported scripts create their SparkSession themselves, before any of our calls: point Spark's Python
# workers at this interpreter (where TensorFlow lives) as soon as the compat API is imported.
_spark_env()
