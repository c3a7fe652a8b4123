"""The registered model: an MLflow pyfunc that takes the user's raw rows and answers in the user's terms.

Inside the logged model: the Keras model file, the encoding (encoding.Encoding as JSON) and a copy of the
cerebro_ops package (``code_paths``), so ``mlflow.pyfunc.load_model``, ``mlflow models serve`` and
``mlflow.pyfunc.spark_udf`` work without the store, Spark or an installed cerebro-ops.
predict(raw rows) = decode(keras_model(encode(rows))).

Adapter module: MLflow and Keras are imported here, never in the pure core.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from importlib import metadata as _dist
from pathlib import Path
from typing import Any, Mapping

import mlflow.pyfunc
import numpy as np
import pandas as pd

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from cerebro_ops.core.encoding import Encoding
from cerebro_ops.core.errors import DataError

KERAS_ARTIFACT = "keras_model"
ENCODING_ARTIFACT = "encoding"
PREDICT_BATCH = 8192
# The runtime pinned in the logged model's requirements: (distribution names to try, in order).
_PINNED = (("tensorflow-cpu", "tensorflow"), ("keras",), ("pandas",), ("numpy",), ("mlflow", "mlflow-skinny"))
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The model is logged "from code" (this file, run at load time after code_paths is on sys.path), not as a
# pickled object: loading it unpickles nothing.
_MODEL_CODE = """from mlflow.models import set_model

from cerebro_ops.keras.serving import RawRowsModel

set_model(RawRowsModel())
"""


class RowsError(DataError, MlflowException):
    """A DataError about the rows to score that MLflow's scoring server reports as such: a 400 whose message
    names the column, the row and the fix (any other exception becomes an opaque 'unexpected error')."""

    def __init__(self, err: DataError):
        DataError.__init__(self, err.field, err.problem, err.fix)
        MlflowException.__init__(self, str(self), error_code=INVALID_PARAMETER_VALUE)


class RawRowsModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: raw rows (a pandas DataFrame with the source's column names) -> decoded predictions.

    After loading, ``mlflow.pyfunc.load_model(uri).unwrap_python_model()`` gives this object, with
    ``.keras_model`` (compiled, as trained) and ``.encoding``: what the champion check scores with.
    """

    def load_context(self, context) -> None:
        import keras

        with open(context.artifacts[ENCODING_ARTIFACT], encoding="utf-8") as f:
            self.encoding = Encoding.from_meta(json.load(f))
        self.keras_model = keras.saving.load_model(context.artifacts[KERAS_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        try:
            x = self.encoding.encode(model_input)
        except DataError as exc:
            raise RowsError(exc) from None
        return self.encoding.decode(predict_keras(self.keras_model, x, self.encoding.feature_spans))


def keras_inputs(model, x: np.ndarray, spans: Mapping[str, Any]):
    """What to feed ``model``, exactly as in training: ``x`` itself, or {input name: that column's slice} when
    the model has one input per feature column (``spans``: the encoding's feature_spans)."""
    from cerebro_ops.keras.trainer import model_inputs

    return model_inputs(model, x, spans)


def predict_keras(model, x: np.ndarray, spans: Mapping[str, Any]) -> np.ndarray:
    """The model's outputs on the encoded rows `x`, PREDICT_BATCH rows per call. predict_on_batch, not predict:
    predict builds a tf.data pipeline on every call, 30 ms even for the one row of a REST request (0.7 ms)."""
    if len(x) == 0:  # Keras refuses an empty batch
        return np.zeros((0, 1), dtype=np.float32)
    batches = (keras_inputs(model, x[start:start + PREDICT_BATCH], spans) for start in range(0, len(x), PREDICT_BATCH))
    return np.concatenate([np.asarray(model.predict_on_batch(batch)) for batch in batches])


def pinned_requirements() -> list[str]:
    """``dist==version`` of the running TensorFlow, Keras, pandas, numpy and MLflow."""
    reqs = []
    for names in _PINNED:
        for name in names:
            try:
                reqs.append(f"{name}=={_dist.version(name)}")
                break
            except _dist.PackageNotFoundError:
                continue
    return reqs


def log_model(keras_model, encoding: Encoding, raw_example: pd.DataFrame, *, run_id: str | None,
              model_id: str | None, name: str = "model"):
    """Log the pyfunc under ``run_id`` (into the LoggedModel ``model_id``); return MLflow's ModelInfo.

    ``raw_example``: a few raw rows (the label may be there; it is dropped). The signature names every
    feature column (of any type: see raw_rows_schema) and the decoded output columns. Uses the
    process-global tracking URI: call it inside ``Tracker.mlflow_context()``.
    """
    from mlflow.models import Model, infer_signature

    example = encoding.raw_features(raw_example)
    output = encoding.decode(predict_keras(keras_model, encoding.encode(example), encoding.feature_spans))
    with warnings.catch_warnings():  # MLflow's hint about ints and missing values: the README covers types
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(example, output)
    signature.inputs = raw_rows_schema(encoding)
    with tempfile.TemporaryDirectory() as tmp:
        code_path = os.path.join(tmp, "raw_rows_model.py")
        with open(code_path, "w", encoding="utf-8") as f:
            f.write(_MODEL_CODE)
        keras_path = os.path.join(tmp, "model.keras")
        keras_model.save(keras_path)
        encoding_path = os.path.join(tmp, "encoding.json")
        with open(encoding_path, "w", encoding="utf-8") as f:
            json.dump(encoding.to_dict(), f, indent=1, ensure_ascii=False)
        # mlflow.pyfunc.log_model is Model.log(flavor=mlflow.pyfunc, ...) without a run_id parameter (it takes
        # the fluent active run); calling Model.log directly attaches the model to the child run we name.
        return Model.log(
            artifact_path=None, name=name, flavor=mlflow.pyfunc, python_model=code_path,
            artifacts={KERAS_ARTIFACT: keras_path, ENCODING_ARTIFACT: encoding_path},
            code_paths=[str(_PACKAGE_DIR)], signature=signature, input_example=example,
            pip_requirements=pinned_requirements(),
            metadata={"cerebro.task": encoding.task, "cerebro.label": encoding.label,
                      "cerebro.spark_result_type": encoding.spark_result_type()},
            run_id=run_id, model_id=model_id,
        )


def raw_rows_schema(encoding: Encoding):
    """The signature's inputs: every feature column, required, of any type. pandas.read_csv gives an integer
    column as int64, or float64 once one value is missing, and booleans with a gap as objects; MLflow's type
    enforcement would refuse some of those rows, so the encoding checks the values itself (a 400 naming the
    column and row for a value that is not a number)."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    return Schema([ColSpec(AnyType(), c) for c in encoding.feature_columns])


def load(model_uri: str) -> RawRowsModel:
    """The RawRowsModel behind a logged/registered raw-rows pyfunc (its Keras model and encoding loaded).
    Uses the process-global tracking/registry URIs: call it inside ``Tracker.mlflow_context()``."""
    from mlflow.models import get_model_info

    info = get_model_info(model_uri)
    if "cerebro.task" not in (info.metadata or {}):  # e.g. a tensorflow-flavor model of an older version
        raise TypeError(f"{model_uri} is not a raw-rows model (flavors {sorted(info.flavors)}): it takes "
                        "encoded tensors, not the user's rows")
    inner = mlflow.pyfunc.load_model(model_uri).unwrap_python_model()
    if not (hasattr(inner, "keras_model") and hasattr(inner, "encoding")):  # duck-typed: any cerebro_ops copy
        raise TypeError(f"{model_uri} holds a {type(inner).__name__}, not a raw-rows model")
    return inner
