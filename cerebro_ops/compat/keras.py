"""`cerebro.keras` equivalent: SparkEstimator (what estimator_gen_fn returns) and the trained-model wrapper.

Workers import builders by path, so the user's ``estimator_gen_fn`` is cloudpickled into the run store and
the generic builder :func:`estimator_builder` (``cerebro_ops.compat.keras:estimator_builder``) loads it; each
config's params carry the pickle's URI under the key ``estimator_gen_fn``.
"""
from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import numpy as np

GEN_FN_KEY = "estimator_gen_fn"
BUILDER = "cerebro_ops.compat.keras:estimator_builder"
log = logging.getLogger("cerebro_ops.compat")
_FNS: dict[str, Any] = {}


class SparkEstimator:
    """A Keras model with its optimizer, loss, metrics and batch size (compiled by the builder)."""

    # shape: the original Cerebro API's signature, kept so that its scripts run unchanged.
    def __init__(self, model=None, optimizer=None, loss=None, metrics=None, batch_size: int = 32,
                 custom_objects=None, loss_weights=None, sample_weight_col=None, **kwargs):
        if model is None:
            raise ValueError("SparkEstimator needs model=<keras.Model>")
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.metrics = list(metrics or [])
        self.batch_size = int(batch_size)
        self.loss_weights = loss_weights

    def compiled_model(self):
        if self.optimizer is not None or self.loss is not None:
            self.model.compile(optimizer=self.optimizer or "adam", loss=self.loss, metrics=self.metrics,
                               loss_weights=self.loss_weights)
        elif not getattr(self.model, "compiled", False):
            raise ValueError("SparkEstimator needs optimizer= and loss= (or an already compiled model)")
        return self.model


def load_gen_fn(uri: str):
    """The user's estimator_gen_fn, unpickled only after its bytes match the sha256 its file is named by
    (``<sha256>.pkl``, written by compat.tune): a file swapped in the store is refused, not run."""
    fn = _FNS.get(uri)
    if fn is None:
        import cloudpickle

        from cerebro_ops.store import Store

        folder, name = uri.rstrip("/").rsplit("/", 1)
        digest = name[:-len(".pkl")] if name.endswith(".pkl") else ""
        if not re.fullmatch(r"[0-9a-f]{16,64}", digest):  # 16: the shorter names of earlier versions
            raise ValueError(f"{uri} is not named by the sha256 of its content; it is not unpickled")
        blob = Store(folder).read_bytes(name)
        if not hashlib.sha256(blob).hexdigest().startswith(digest):
            raise ValueError(f"{uri} does not match the sha256 it is named by; it is not unpickled")
        fn = _FNS[uri] = cloudpickle.loads(blob)
    return fn


def user_params(params: dict) -> dict:
    return {k: v for k, v in params.items() if k != GEN_FN_KEY}


def estimator(params: dict) -> SparkEstimator:
    est = load_gen_fn(params[GEN_FN_KEY])(user_params(params))
    if not isinstance(est, SparkEstimator):
        raise TypeError(f"estimator_gen_fn returned a {type(est).__name__}, not a SparkEstimator")
    return est


def estimator_builder(params: dict, info: Any):
    """The model builder every worker imports: calls the user's estimator_gen_fn(params)."""
    est = estimator(params)
    if "batch_size" in params and int(params["batch_size"]) != est.batch_size:
        log.warning("estimator batch_size %s differs from params batch_size %s; training uses the latter",
                    est.batch_size, params["batch_size"])
    return est.compiled_model()


# --------------------------------------------------------------------------------------------- data

def feature_columns_of(df, feature_columns: list[str]) -> tuple[list, dict]:
    """Spark columns as the study reads them, and {"numeric", "categorical", "arrays"} by the column's type:
    numbers and booleans as double, ml vectors and arrays as array<double>, anything else as string."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kinds: dict = {"numeric": [], "categorical": [], "arrays": []}
    cols = []
    for c in feature_columns:
        t = df.schema[c].dataType
        if t.typeName() == "vector":  # pyspark.ml VectorUDT
            from pyspark.ml.functions import vector_to_array
            cols.append(vector_to_array(F.col(c)).alias(c))
            kinds["arrays"].append(c)
        elif isinstance(t, T.ArrayType):
            cols.append(F.col(c))
            kinds["arrays"].append(c)
        elif isinstance(t, (T.NumericType, T.BooleanType)):
            cols.append(F.col(c).cast("double").alias(c))
            kinds["numeric"].append(c)
        else:
            cols.append(F.col(c).cast("string").alias(c))
            kinds["categorical"].append(c)
    return cols, kinds


class SparkModel:
    """A trained config: `.keras()`, `.transform(df)` (adds the prediction column), `.get_history()`."""

    # shape: everything a fitted model of the Cerebro API answers for (history, loader, encoding, session).
    def __init__(self, model_id: str, params: dict, history: dict, loader, data: dict, meta: dict, spark,
                 label_column: str):
        self.model_id = model_id
        self.params = params
        self._history = history
        self._loader = loader
        self._keras = None
        self._data = data
        self._meta = meta
        self._spark = spark
        self.output_columns = [f"{label_column}__output"]

    def getRunId(self) -> str:  # noqa: N802 (original API name)
        return self.model_id

    def keras(self):
        if self._keras is None:
            self._keras = self._loader()
        return self._keras

    def get_history(self) -> dict:
        return self._history

    def set_output_columns(self, cols: list[str]) -> "SparkModel":
        self.output_columns = list(cols)
        return self

    def predict(self, pdf) -> np.ndarray:
        """Model outputs for rows with the feature columns as the study read them (see feature_columns_of)."""
        from cerebro_ops.core.encoding import Encoding
        from cerebro_ops.keras.trainer import model_inputs

        model = self.keras()
        x = Encoding.from_meta(self._meta).encode(pdf)  # the prepare step's encoding, rebuilt from meta.json
        return model.predict(model_inputs(model, x, self._meta.get("feature_spans")), batch_size=1024, verbose=0)

    def transform(self, df):
        """Predictions for a Spark DataFrame (with the training feature columns), computed on the driver."""
        features = [*self._data["numeric"], *self._data["categorical"], *self._data["arrays"]]
        cols, _ = feature_columns_of(df, features)
        pdf = df.toPandas()
        # Encode what training saw (vectors as arrays, categories as strings), keep the user's own columns.
        pred = self.predict(df.select(*cols).toPandas())
        out = self.output_columns[0]
        pdf[out] = pred[:, 0].astype(float) if pred.ndim == 2 and pred.shape[1] == 1 else [list(map(float, r))
                                                                                        for r in pred]
        return self._spark.createDataFrame(pdf)
