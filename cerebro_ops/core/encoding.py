"""The feature encoding of a prepared run, in numpy: raw rows as the user has them -> the model's input.

It reproduces what the Spark prepare step writes (spark/prepare.py) bit for bit, from meta.json alone, so a
registered model can score raw rows with no Spark and no store:

- numerics, in ``numeric`` order: ``(x - mean) / std`` in float64 (booleans and true/false count as 0/1); a
  missing value (None, NaN, ±Inf, an NA token of pandas.read_csv) takes the train median (``fill``), and a
  column that had missing values in train is followed by its 0/1 ``<missing>`` indicator slot;
- datetime columns, in ``datetime`` order: year, month, day, day of week (Monday 0) and hour of the ISO 8601
  time in UTC, each standardised and imputed like a numeric, then the column's indicator slot if it has one;
- categoricals, in ``categorical`` order: one slot per value of ``categories[col]`` (1.0 where the value
  equals it, compared in the category's own type: numbers numerically, booleans as booleans (true/false
  text and 0/1 too), strings as strings), then ``<missing>`` if train had a missing value, then one
  "other" slot for a value in none of them (a missing value too, when there is no ``<missing>`` slot);
- arrays, flattened (a missing array or element is 0 when the run imputed);
- the whole vector cast to float32 at the end, then reshaped to ``input_shape``.

Pure: numpy and pandas only (no TensorFlow, Spark or MLflow).
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from cerebro_ops.core.errors import DataError

TASKS = ("binary", "multiclass", "regression")
# meta.json keys the encoding is rebuilt from (meta.json holds more: row counts, the source, the split).
META_KEYS = ("task", "label", "numeric", "categorical", "arrays", "numeric_stats", "categories", "label_classes",
             "input_shape", "num_classes", "raw_dtypes", "feature_spans", "feature_names", "datetime",
             "missing_indicators", "missing_categories", "label_stats", "missing")
_OPTIONAL_KEYS = ("feature_spans", "feature_names", "datetime", "missing_indicators", "missing_categories",
                  "label_stats", "missing")
RAW_DTYPES = ("double", "long", "string", "boolean", "array", "datetime")
# Text that means "missing": pandas.read_csv's default NA tokens, so that what prepare treats as missing is
# what a user's read_csv gives the champion (Spark's CSV reader itself only knows "").
NA_TOKENS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
             "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
NA_TEXT = frozenset(NA_TOKENS)
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
    datetime: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    missing_indicators: tuple[str, ...] = ()   # numeric/datetime columns followed by a 0/1 <missing> slot
    missing_categories: tuple[str, ...] = ()   # categorical columns with a <missing> slot before <other>
    label_stats: Mapping[str, float] | None = None  # regression: the model predicts (y - mean) / std
    missing: str = "drop"  # the run's data.missing; "impute" fills missing arrays with 0

    # ------------------------------------------------------------------------------------ construction
    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "Encoding":
        """From meta.json (or the encoding JSON a registered model carries). DataError('meta.json') when a key
        is missing or the pieces do not add up."""
        missing = [k for k in META_KEYS if k not in meta and k not in _OPTIONAL_KEYS]
        if missing:
            raise DataError("meta.json", f"the feature metadata lacks {', '.join(missing)}", _REPREPARE)
        try:
            enc = cls(
                task=str(meta["task"]),
                label=str(meta["label"]),
                numeric=tuple(str(c) for c in meta["numeric"]),
                categorical=tuple(str(c) for c in meta["categorical"]),
                arrays={str(c): tuple(int(d) for d in s) for c, s in meta["arrays"].items()},
                numeric_stats={c: {"mean": float(s["mean"]), "std": float(s["std"]),
                                   "fill": None if s.get("fill") is None else float(s["fill"])}
                               for c, s in meta["numeric_stats"].items()},
                categories={c: tuple(v) for c, v in meta["categories"].items()},
                label_classes=tuple(meta["label_classes"] or ()),
                input_shape=tuple(int(d) for d in meta["input_shape"]),
                num_classes=int(meta["num_classes"] or 0),
                raw_dtypes={str(c): str(t) for c, t in meta["raw_dtypes"].items()},
                feature_spans={},
                feature_names=(),
                datetime={str(c): tuple(str(p) for p in parts) for c, parts in (meta.get("datetime") or {}).items()},
                missing_indicators=tuple(str(c) for c in meta.get("missing_indicators") or ()),
                missing_categories=tuple(str(c) for c in meta.get("missing_categories") or ()),
                label_stats=({"mean": float(meta["label_stats"]["mean"]), "std": float(meta["label_stats"]["std"])}
                             if meta.get("label_stats") else None),
                missing=str(meta.get("missing") or "drop"),  # before data.missing, prepare dropped rows
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
        for c, slots in self.numeric_slots():
            start = len(names)
            names += slots + ([f"{c}=<missing>"] if c in self.missing_indicators else [])
            spans[c] = (start, len(names))
        for c in self.categorical:
            start = len(names)
            names += [f"{c}={v}" for v in self.categories.get(c, ())]
            names += ([f"{c}=<missing>"] if c in self.missing_categories else []) + [f"{c}=<other>"]
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
        for _, slots in self.numeric_slots():
            for c in slots:
                if c not in self.numeric_stats:
                    bad(f"numeric column {c!r} has no numeric_stats")
                if not self.numeric_stats[c]["std"] > 0:
                    bad(f"numeric column {c!r} has std {self.numeric_stats[c]['std']}")
        if self.task == "regression" and self.label_stats is not None and not self.label_stats["std"] > 0:
            bad(f"label_stats has std {self.label_stats['std']}")
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
            "datetime": {c: list(p) for c, p in self.datetime.items()},
            "missing_indicators": list(self.missing_indicators),
            "missing_categories": list(self.missing_categories),
            "label_stats": dict(self.label_stats) if self.label_stats else None,
            "missing": self.missing,
        }

    # ------------------------------------------------------------------------------------ shape
    @property
    def feature_columns(self) -> list[str]:
        return [*self.numeric, *self.datetime, *self.categorical, *self.arrays]

    def numeric_slots(self) -> list[tuple[str, list[str]]]:
        """[(column, its standardised slots)]: a numeric column is one slot, a datetime column one per part."""
        return ([(c, [c]) for c in self.numeric]
                + [(c, [f"{c}.{p}" for p in parts]) for c, parts in self.datetime.items()])

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
        for c, slots in self.numeric_slots():
            start = self.feature_spans[c][0]
            values = [_numbers(df[c], c)] if c in self.numeric else _datetime_parts(df[c], self.datetime[c])
            absent = np.isnan(values[0])
            for i, (slot, v) in enumerate(zip(slots, values)):
                s = self.numeric_stats[slot]
                if absent.any():
                    v = self._imputed(c, slot, v, absent, df.index)
                # Same double arithmetic as Spark's (x - mean) / std; the float32 cast comes last, as there.
                out[:, start + i] = (v - s["mean"]) / s["std"]
            if c in self.missing_indicators:
                out[:, start + len(slots)] = absent
        for c in self.categorical:
            start, end = self.feature_spans[c]
            out[:, start:end] = _one_hot(df[c], self.categories[c], c in self.missing_categories)
        for c, shape in self.arrays.items():
            start, end = self.feature_spans[c]
            out[:, start:end] = _flat_arrays(df[c], c, end - start, shape, fill=self.missing == "impute")
        return out.astype(np.float32).reshape((n, *self.input_shape))

    def _imputed(self, column: str, slot: str, values: np.ndarray, absent: np.ndarray, index) -> np.ndarray:
        fill = self.numeric_stats[slot]["fill"]
        if fill is None:
            bad = np.flatnonzero(absent)
            raise DataError(column, f"row {index[bad[0]]!r} has no value"
                            + (f" ({bad.size} rows without one)" if bad.size > 1 else ""),
                            f"send a value in column {column!r} for every row: the model was trained with "
                            f"data.missing: {self.missing}, which imputes nothing")
        return np.where(absent, fill, values)

    # ------------------------------------------------------------------------------------ labels
    def encode_labels(self, labels: Sequence[Any] | pd.Series) -> np.ndarray:
        """float32 (n,): the class index in label_classes (classification) or the value (regression, standardised
        with label_stats as the model was trained)."""
        s = labels if isinstance(labels, pd.Series) else pd.Series(list(labels), dtype=object)
        if self.task == "regression":
            y = _numbers(s, self.label)
            if np.isnan(y).any():
                raise DataError(self.label, f"row {s.index[np.flatnonzero(np.isnan(y))[0]]!r} has no label",
                                "score only rows with a label")
            if self.label_stats:
                y = (y - self.label_stats["mean"]) / self.label_stats["std"]
            return y.astype(np.float32)
        index = _index_of(self.label_classes)
        kind = _kind(self.label_classes)
        out = np.empty(len(s), dtype=np.float32)
        class_of = _slot_of(index, kind, index.get(None, -1), -1)
        for i, (row, v) in enumerate(s.items()):
            k = class_of(v)
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
            y = out[:, 0]
            if self.label_stats:
                y = y * self.label_stats["std"] + self.label_stats["mean"]
            return pd.DataFrame({"prediction": y})
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
    def typical_rows(self, n: int = 2) -> pd.DataFrame:
        """`n` made-up rows of typical values (train medians or means, the first category, zero arrays, a
        fixed date): an input example that shows the columns and types without any row of the data."""
        cols: dict[str, list] = {}
        for c in self.numeric:
            s = self.numeric_stats[c]
            cols[c] = [s["fill"] if s.get("fill") is not None else s["mean"]] * n
        for c in self.datetime:
            cols[c] = ["2024-01-01 00:00:00"] * n
        for c in self.categorical:
            values = self.categories[c]
            cols[c] = [values[0] if values else None] * n
        for c, shape in self.arrays.items():
            cols[c] = [np.zeros(math.prod(shape)).tolist() for _ in range(n)]
        return self.raw_features(pd.DataFrame(cols))

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
                s = s.astype(np.float64 if s.isna().any() else np.int64)
            elif t == "boolean":
                s = s.astype(object if s.isna().any() else bool)
            elif t in ("string", "datetime"):
                s = s.map(lambda v: v if v is None or isinstance(v, str) else str(v)).astype(object)
            else:  # arrays: lists of floats (JSON-able input examples)
                s = s.map(lambda v: np.asarray(v, dtype=np.float64).ravel().tolist())
            out[c] = s.reset_index(drop=True)
        return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------- helpers

def _numbers(s: pd.Series, col: str) -> np.ndarray:
    """float64 values of a numeric column, NaN where a value is missing (None, NaN, ±Inf, an NA token);
    DataError naming the first row whose value is not a number."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        vals = s.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        vals = np.array([_number(v) for v in s], dtype=object)
        bad = np.flatnonzero([v is _MISSING for v in vals])
        if bad.size:
            row = s.index[bad[0]]
            raise DataError(col, f"row {row!r} holds {_short(s.iloc[bad[0]])}, which is not a number"
                            + (f" ({bad.size} rows like it)" if bad.size > 1 else ""),
                            f"send a number (or true/false, or nothing for a missing value) in column {col!r}")
        vals = vals.astype(np.float64)
    vals[np.isinf(vals)] = np.nan
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
        if v in NA_TEXT or v.strip() in NA_TEXT:
            return math.nan
        text = v.strip().lower()
        if text in ("true", "false"):
            return float(text == "true")
        try:
            return float(text)
        except ValueError:
            return _MISSING
    try:
        return math.nan if pd.isna(v) else float(v)
    except (TypeError, ValueError):
        return _MISSING


def _datetime_parts(s: pd.Series, parts: Sequence[str]) -> list[np.ndarray]:
    """One float64 array per part of an ISO 8601 date/time column (UTC; NaN where missing or unparseable),
    as prepare computes them in Spark with the session time zone set to UTC."""
    text = s.map(lambda v: None if isinstance(v, str) and v.strip() in NA_TEXT else v)
    when = pd.to_datetime(text, errors="coerce", utc=True, format="ISO8601")
    getters = {"year": lambda t: t.dt.year, "month": lambda t: t.dt.month, "day": lambda t: t.dt.day,
               "day_of_week": lambda t: t.dt.dayofweek, "hour": lambda t: t.dt.hour}
    return [getters[p](when).to_numpy(dtype=np.float64, na_value=np.nan) for p in parts]


def _kind(values: Sequence[Any]) -> str:
    """How a column's categories compare: 'bool', 'number' or 'string'."""
    if values and all(isinstance(v, (bool, np.bool_)) for v in values):
        return "bool"
    if values and all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values):
        return "number"
    return "string"


def _key(v: Any, kind: str):
    """v in the categories' own type, or None when it is missing (None, NaN, an NA token) or cannot be one of
    them. Booleans, true/false text and 0/1 are one value; an integral float is its integer (11.0 is "11")."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str):
        if v in NA_TEXT:
            return None
        if v.strip().lower() in ("true", "false"):
            v = v.strip().lower() == "true"
    if kind == "bool":
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        f = _number(v)
        return bool(f) if f is not _MISSING and f in (0.0, 1.0) else None
    if kind == "number":
        if isinstance(v, (bool, np.bool_)):
            return int(v)
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
    if isinstance(v, (bool, np.bool_)):
        return "true" if v else "false"  # prepare writes true/false text in lower case
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))  # pandas reads an integer-coded column with gaps as floats: 11.0 is "11"
    return v if isinstance(v, str) else str(v)


def _index_of(values: Sequence[Any]) -> dict:
    kind = _kind(values)
    return {_key(v, kind): i for i, v in enumerate(values)}


# Types whose equal values (same type) have the same _key: a value of these is looked up once per distinct
# value, not once per row. Not Decimal: Decimal("1.0") == Decimal("1"), but their text differs.
_MEMO_TYPES = (str, int, float, bool, np.integer, np.floating, np.bool_)


def _slot_of(index: dict, kind: str, missing: int, other: int):
    """v -> its slot: a category's, `missing` for a missing value, else `other`; each distinct value of a
    memoisable type is worked out once (scoring a batch repeats the same few categories)."""
    memo: dict = {}

    def lookup(v) -> int:
        return missing if (k := _key(v, kind)) is None else index.get(k, other)

    def slot(v) -> int:
        if not isinstance(v, _MEMO_TYPES):
            return lookup(v)
        key = (type(v), v)
        if key not in memo:
            memo[key] = lookup(v)
        return memo[key]

    return slot


def _slots(s: pd.Series, slot) -> np.ndarray:
    """slot(v) for every value of `s`. A text column is factorised first, so `slot` runs once per distinct value
    instead of once per row (a Python call per row took 0.15 s for three columns of 65k rows); text equals
    text only when it is the same text, so grouping by value cannot merge two values with different slots."""
    values = s.to_numpy(dtype=object)
    if len(values) < 64 or pd.api.types.infer_dtype(values, skipna=True) != "string":
        return np.fromiter(map(slot, values), dtype=np.int64, count=len(values))
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    out = np.fromiter(map(slot, uniques), dtype=np.int64, count=len(uniques))[codes]
    missing = codes < 0  # None, NaN, pd.NA ...: each as slot() sees it
    if missing.any():
        out[missing] = np.fromiter(map(slot, values[missing]), dtype=np.int64, count=int(missing.sum()))
    return out


def _one_hot(s: pd.Series, values: Sequence[Any], missing_slot: bool) -> np.ndarray:
    """One row per value: its category's slot, then the <missing> slot (if any), then <other>."""
    index, kind = _index_of(values), _kind(values)
    other = len(values) + int(missing_slot)
    missing = len(values) if missing_slot else other
    index.pop(None, None)
    slots = _slots(s, _slot_of(index, kind, missing, other))
    out = np.zeros((len(s), other + 1), dtype=np.float64)
    out[np.arange(len(s)), slots] = 1.0
    return out


def _flat_arrays(s: pd.Series, col: str, size: int, shape: tuple[int, ...], fill: bool = False) -> np.ndarray:
    """The arrays flattened; with `fill` (the run imputed) a missing array or element is 0, as in prepare."""
    out = np.empty((len(s), size), dtype=np.float64)
    for i, (row, v) in enumerate(s.items()):
        fix = f"send a list of {size} numbers (shape {list(shape)}) in column {col!r} for every row"
        if v is None or (np.ndim(v) == 0 and _number(v) is not _MISSING and math.isnan(_number(v))):
            if fill:
                out[i] = 0.0
                continue
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
            if not fill:
                raise DataError(col, f"row {row!r} has a missing (NaN) element", fix)
            arr = np.nan_to_num(arr, nan=0.0)
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


# ---------------------------------------------------------------------------------------------- label units

# A regression model trains on the standardised label; these metrics (Keras' names) scale back to the
# label's own units by std (errors) or std² (squared errors). Others (r2, mape on a shifted label) are left
# as computed, on the standardised label.
_LINEAR_METRICS = frozenset({"mae", "mean_absolute_error", "rmse", "root_mean_squared_error"})
_SQUARED_METRICS = frozenset({"mse", "mean_squared_error"})


def loss_name(model) -> str | None:
    """The compiled loss of a Keras model as a name ("mse", "mean_squared_error", ...), or None."""
    loss = getattr(model, "loss", None)
    return loss if isinstance(loss, str) else getattr(loss, "name", None)


def in_label_units(metrics: Mapping[str, Any], std: float | None, loss: str | None) -> dict:
    """`metrics` (Keras names, "loss" too) of a model trained on (y - mean) / std, in the label's units."""
    if not std:
        return dict(metrics)
    out = dict(metrics)
    for key, value in metrics.items():
        name = loss if key == "loss" else key
        if value is None or name is None:
            continue
        if name in _LINEAR_METRICS:
            out[key] = float(value) * std
        elif name in _SQUARED_METRICS:
            out[key] = float(value) * std * std
    return out
