"""The feature encoding of a prepared run, in numpy: raw rows as the user has them -> the model's input.

It reproduces what the Spark prepare step writes (spark/prepare.py) bit for bit, from meta.json alone, so a
registered model can score raw rows with no Spark and no store:

- numerics, in ``numeric`` order: ``(x - mean) / std`` in float64 (booleans count as 0/1);
- categoricals, in ``categorical`` order: one slot per value of ``categories[col]`` (1.0 where the value
  equals it, compared in the category's own type: numbers numerically, booleans as booleans, strings as
  strings), then one "other" slot for a value in none of them (a missing value included);
- arrays, flattened;
- the whole vector cast to float32 at the end, then reshaped to ``input_shape``.

Pure: numpy and pandas only (no TensorFlow, Spark or MLflow).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import DataError

TASKS = ("binary", "multiclass", "regression")
RAW_DTYPES = ("double", "long", "string", "boolean", "array")
# meta.json keys the encoding is rebuilt from (meta.json holds more: row counts, the source, the split).
META_KEYS = ("task", "label", "numeric", "categorical", "arrays", "numeric_stats", "categories", "label_classes",
             "input_shape", "num_classes", "raw_dtypes", "feature_spans", "feature_names")
_REPREPARE = "re-run the prepare step (meta.json predates raw-row encoding or was edited)"
_MISSING = object()


@dataclass(frozen=True)
class Encoding:
    task: str
    label: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    arrays: Mapping[str, tuple[int, ...]]
    numeric_stats: Mapping[str, Mapping[str, float]]
    categories: Mapping[str, tuple[Any, ...]]
    label_classes: tuple[Any, ...]
    input_shape: tuple[int, ...]
    num_classes: int
    raw_dtypes: Mapping[str, str]
    feature_spans: Mapping[str, tuple[int, int]]
    feature_names: tuple[str, ...]

    # ------------------------------------------------------------------------------------ construction
    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "Encoding":
        """From meta.json (or the encoding JSON a registered model carries). DataError('meta.json') when a key
        is missing or the pieces do not add up."""
        missing = [k for k in META_KEYS if k not in meta and k not in ("feature_spans", "feature_names")]
        if missing:
            raise DataError("meta.json", f"the feature metadata lacks {', '.join(missing)}", _REPREPARE)
        try:
            enc = cls(
                task=str(meta["task"]),
                label=str(meta["label"]),
                numeric=tuple(str(c) for c in meta["numeric"]),
                categorical=tuple(str(c) for c in meta["categorical"]),
                arrays={str(c): tuple(int(d) for d in s) for c, s in meta["arrays"].items()},
                numeric_stats={c: {"mean": float(s["mean"]), "std": float(s["std"])}
                               for c, s in meta["numeric_stats"].items()},
                categories={c: tuple(v) for c, v in meta["categories"].items()},
                label_classes=tuple(meta["label_classes"] or ()),
                input_shape=tuple(int(d) for d in meta["input_shape"]),
                num_classes=int(meta["num_classes"] or 0),
                raw_dtypes={str(c): str(t) for c, t in meta["raw_dtypes"].items()},
                feature_spans={},
                feature_names=(),
            )
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise DataError("meta.json", f"the feature metadata is malformed ({type(exc).__name__}: {exc})",
                            _REPREPARE) from None
        spans, names = enc._layout()
        object.__setattr__(enc, "feature_spans", spans)
        object.__setattr__(enc, "feature_names", tuple(names))
        enc._check(meta)
        return enc

    def _layout(self) -> tuple[dict[str, tuple[int, int]], list[str]]:
        spans, names = {}, []
        for c in self.numeric:
            spans[c] = (len(names), len(names) + 1)
            names.append(c)
        for c in self.categorical:
            start = len(names)
            names += [f"{c}={v}" for v in self.categories.get(c, ())] + [f"{c}=<other>"]
            spans[c] = (start, len(names))
        for c, shape in self.arrays.items():
            size = math.prod(shape)
            spans[c] = (len(names), len(names) + size)
            names += [f"{c}[{i}]" for i in range(size)]
        return spans, names

    def _check(self, meta: Mapping[str, Any]) -> None:
        def bad(problem: str):
            raise DataError("meta.json", problem, _REPREPARE)

        if self.task not in TASKS:
            bad(f"task {self.task!r} is not one of {', '.join(TASKS)}")
        if not self.feature_columns:
            bad("there are no feature columns")
        for c in self.numeric:
            if c not in self.numeric_stats:
                bad(f"numeric column {c!r} has no numeric_stats")
            if not self.numeric_stats[c]["std"] > 0:
                bad(f"numeric column {c!r} has std {self.numeric_stats[c]['std']}")
        for c in self.categorical:
            if c not in self.categories:
                bad(f"categorical column {c!r} has no categories")
        for c in [*self.feature_columns, self.label]:
            if self.raw_dtypes.get(c) not in RAW_DTYPES:
                bad(f"raw_dtypes[{c!r}] is {self.raw_dtypes.get(c)!r}, not one of {', '.join(RAW_DTYPES)}")
        if math.prod(self.input_shape) != self.width:
            bad(f"input_shape {list(self.input_shape)} holds {math.prod(self.input_shape)} values but the "
                f"features make {self.width}")
        if self.task != "regression" and len(self.label_classes) != max(self.num_classes, 2):
            bad(f"{len(self.label_classes)} label_classes for num_classes {self.num_classes}")
        given = meta.get("feature_spans")
        if given is not None:
            given = {str(c): tuple(int(i) for i in s) for c, s in given.items()}
            if given != dict(self.feature_spans):
                bad(f"feature_spans {given} do not match the columns' layout {dict(self.feature_spans)}")

    def to_dict(self) -> dict:
        """JSON-able; ``Encoding.from_meta(enc.to_dict()) == enc`` (the registered model's encoding file)."""
        return {
            "task": self.task, "label": self.label, "numeric": list(self.numeric),
            "categorical": list(self.categorical), "arrays": {c: list(s) for c, s in self.arrays.items()},
            "numeric_stats": {c: dict(s) for c, s in self.numeric_stats.items()},
            "categories": {c: list(v) for c, v in self.categories.items()},
            "label_classes": list(self.label_classes), "input_shape": list(self.input_shape),
            "num_classes": self.num_classes, "raw_dtypes": dict(self.raw_dtypes),
            "feature_spans": {c: list(s) for c, s in self.feature_spans.items()},
            "feature_names": list(self.feature_names),
        }

    # ------------------------------------------------------------------------------------ shape
    @property
    def feature_columns(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.arrays]

    @property
    def width(self) -> int:
        return len(self.feature_names)

    # ------------------------------------------------------------------------------------ features
    def encode(self, df: pd.DataFrame) -> np.ndarray:
        """float32 (n, *input_shape) from raw rows. Other columns (the label too) are ignored.

        DataError (field = the column) for a missing column, a missing/NaN numeric or array value, or a value
        that is not a number; an unseen category goes to that column's "other" slot.
        """
        if not isinstance(df, pd.DataFrame):
            df = pd.DataFrame(df)
        absent = [c for c in self.feature_columns if c not in df.columns]
        if absent:
            raise DataError(absent[0], f"the rows have no column {absent[0]!r}"
                            + (f" (nor {', '.join(map(repr, absent[1:]))})" if absent[1:] else ""),
                            f"send every feature column: {', '.join(map(repr, self.feature_columns))}")
        n = len(df)
        out = np.empty((n, self.width), dtype=np.float64)
        for c in self.numeric:
            s = self.numeric_stats[c]
            start = self.feature_spans[c][0]
            # Same double arithmetic as Spark's (x - mean) / std; the float32 cast comes last, as there.
            out[:, start] = (_numbers(df[c], c) - s["mean"]) / s["std"]
        for c in self.categorical:
            start, end = self.feature_spans[c]
            out[:, start:end] = _one_hot(df[c], self.categories[c])
        for c, shape in self.arrays.items():
            start, end = self.feature_spans[c]
            out[:, start:end] = _flat_arrays(df[c], c, end - start, shape)
        return out.astype(np.float32).reshape((n, *self.input_shape))

    # ------------------------------------------------------------------------------------ labels
    def encode_labels(self, labels: Sequence[Any] | pd.Series) -> np.ndarray:
        """float32 (n,): the class index in label_classes (classification) or the value (regression)."""
        s = labels if isinstance(labels, pd.Series) else pd.Series(list(labels), dtype=object)
        if self.task == "regression":
            return _numbers(s, self.label).astype(np.float32)
        index = _index_of(self.label_classes)
        kind = _kind(self.label_classes)
        out = np.empty(len(s), dtype=np.float32)
        for i, (row, v) in enumerate(s.items()):
            k = index.get(_key(v, kind), -1)
            if k < 0:
                raise DataError(self.label, f"row {row!r} holds {v!r}, which is not one of the classes the model "
                                f"knows ({list(self.label_classes)})",
                                "score only rows whose label is one of those classes")
            out[i] = k
        return out

    # ------------------------------------------------------------------------------------ outputs
    def decode(self, outputs: np.ndarray) -> pd.DataFrame:
        """The model's outputs in the user's terms.

        binary: ``prediction`` (a label value) and ``probability`` (of label_classes[1]; the prediction is
        label_classes[1] when it is above 0.5, as Keras' accuracy counts it); multiclass: ``prediction`` and
        ``probability_<class>`` per class; regression: ``prediction`` in label units.
        """
        out = np.asarray(outputs, dtype=np.float64)
        out = out.reshape(len(out), -1) if out.size else out.reshape(0, max(len(self.label_classes), 1))
        n = len(out)
        if self.task == "regression":
            return pd.DataFrame({"prediction": out[:, 0]})
        classes = _class_array(self.label_classes)
        if self.task == "binary":
            p = out[:, 0]
            return pd.DataFrame({"prediction": classes[(p > 0.5).astype(int)], "probability": p})
        if out.shape[1] != len(classes):
            raise DataError("model", f"the model gives {out.shape[1]} outputs per row for {len(classes)} classes",
                            "register a model built for this run's classes")
        cols = {"prediction": classes[np.argmax(out, axis=1)] if n else classes[:0]}
        cols.update({f"probability_{c}": out[:, i] for i, c in enumerate(self.label_classes)})
        return pd.DataFrame(cols)

    def output_columns(self) -> list[str]:
        if self.task == "multiclass":
            return ["prediction", *(f"probability_{c}" for c in self.label_classes)]
        return ["prediction", "probability"] if self.task == "binary" else ["prediction"]

    def spark_result_type(self) -> str:
        """Spark DDL of decode()'s columns, for ``mlflow.pyfunc.spark_udf(..., result_type=...)``."""
        label = {"long": "bigint", "boolean": "boolean", "double": "double"}.get(self.raw_dtypes[self.label], "string")
        pred = "double" if self.task == "regression" else label
        cols = [("prediction", pred)] + [(c, "double") for c in self.output_columns()[1:]]
        return ", ".join(f"`{c.replace('`', '``')}` {t}" for c, t in cols)

    # ------------------------------------------------------------------------------------ raw rows
    def raw_features(self, df: pd.DataFrame) -> pd.DataFrame:
        """The feature columns of raw rows (the label and any other column dropped), typed as raw_dtypes say:
        what the registered model's signature and input example are made from."""
        out = {}
        for c in self.feature_columns:
            t = self.raw_dtypes[c]
            s = df[c]
            if t == "double":
                s = s.astype(np.float64)
            elif t == "long":
                s = s.astype(np.int64)
            elif t == "boolean":
                s = s.astype(bool)
            elif t == "string":
                s = s.map(lambda v: v if v is None or isinstance(v, str) else str(v)).astype(object)
            else:  # arrays: lists of floats (JSON-able input examples)
                s = s.map(lambda v: np.asarray(v, dtype=np.float64).ravel().tolist())
            out[c] = s.reset_index(drop=True)
        return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------- helpers

def _numbers(s: pd.Series, col: str) -> np.ndarray:
    """float64 values of a numeric column; DataError naming the first missing or non-numeric row."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        vals = np.array([_number(v) for v in s], dtype=object)
        bad = np.flatnonzero([v is _MISSING for v in vals])
        if bad.size:
            row = s.index[bad[0]]
            raise DataError(col, f"row {row!r} holds {s.iloc[bad[0]]!r}, which is not a number"
                            + (f" ({bad.size} rows like it)" if bad.size > 1 else ""),
                            f"send a number (or true/false) in column {col!r} for every row")
        vals = vals.astype(np.float64)
    nan = np.flatnonzero(np.isnan(vals))
    if nan.size:
        raise DataError(col, f"row {s.index[nan[0]]!r} has no value"
                        + (f" ({nan.size} rows without one)" if nan.size > 1 else ""),
                        f"send a number in column {col!r} for every row: the model was not trained with "
                        "missing values")
    return vals


def _number(v: Any):
    """float, NaN for a missing value, _MISSING when the value cannot be read as a number."""
    if v is None:
        return math.nan
    if isinstance(v, (bool, np.bool_)):
        return float(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return _MISSING
    try:
        return math.nan if pd.isna(v) else float(v)
    except (TypeError, ValueError):
        return _MISSING


def _kind(values: Sequence[Any]) -> str:
    """How a column's categories compare: 'bool', 'number' or 'string'."""
    if values and all(isinstance(v, (bool, np.bool_)) for v in values):
        return "bool"
    if values and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values):
        return "number"
    return "string"


def _key(v: Any, kind: str):
    """v in the categories' own type, or None when it cannot be one of them (missing, other type)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if kind == "bool":
        return bool(v) if isinstance(v, (bool, np.bool_)) else None
    if kind == "number":
        if isinstance(v, (bool, np.bool_)):
            return None
        f = _number(v)
        if f is _MISSING or math.isnan(f):
            return None
        # Exact integers compare as ints (no float rounding above 2**53); 2 and 2.0 hash alike.
        return int(v) if isinstance(v, (numbers.Integral, np.integer)) else f
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v if isinstance(v, str) else str(v)


def _index_of(values: Sequence[Any]) -> dict:
    kind = _kind(values)
    return {_key(v, kind): i for i, v in enumerate(values)}


def _one_hot(s: pd.Series, values: Sequence[Any]) -> np.ndarray:
    index, kind = _index_of(values), _kind(values)
    other = len(values)
    slots = np.fromiter((index.get(_key(v, kind), other) for v in s), dtype=np.int64, count=len(s))
    out = np.zeros((len(s), len(values) + 1), dtype=np.float64)
    out[np.arange(len(s)), slots] = 1.0
    return out


def _flat_arrays(s: pd.Series, col: str, size: int, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty((len(s), size), dtype=np.float64)
    for i, (row, v) in enumerate(s.items()):
        fix = f"send a list of {size} numbers (shape {list(shape)}) in column {col!r} for every row"
        if v is None or (np.ndim(v) == 0 and _number(v) is not _MISSING and math.isnan(_number(v))):
            raise DataError(col, f"row {row!r} has no value", fix)
        try:
            arr = np.asarray(v, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            try:  # ragged nested lists ([[1, 2], [3]]) or lists of strings
                arr = np.asarray([_number(x) for x in _flatten(v)], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(col, f"row {row!r} holds {_short(v)}, which is not a list of numbers", fix) from None
        if arr.size != size:
            raise DataError(col, f"row {row!r} holds {arr.size} values, not {size}", fix)
        if np.isnan(arr).any():
            raise DataError(col, f"row {row!r} has a missing (NaN) element", fix)
        out[i] = arr
    return out


def _flatten(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        for x in v:
            yield from _flatten(x)
    else:
        yield v


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _class_array(classes: Sequence[Any]) -> np.ndarray:
    """The classes as a numpy array of their own type (str -> object, so pandas keeps Python strings)."""
    kind = _kind(classes)
    if kind == "bool":
        return np.array(classes, dtype=bool)
    if kind == "number":
        return np.array(classes, dtype=np.int64 if all(isinstance(c, numbers.Integral) for c in classes)
                        else np.float64)
    return np.array(classes, dtype=object)
