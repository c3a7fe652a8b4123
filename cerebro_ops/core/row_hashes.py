"""Content hashes of raw rows, to tell which validation rows a champion never trained on.

A registered champion carries the hashes of its training rows; the next run compares challenger and champion
only on its validation rows whose hash is not among them. Values are put in one canonical form first (numbers
as float64, everything else as text, missing as missing), so a row hashes alike whichever run read it.

Pure: numpy and pandas only.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def _text(v):
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)


def _canonical(s: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s.astype(np.float64)
    if pd.api.types.infer_dtype(s, skipna=True) == "string":
        # Text already (a categorical column as Parquet gives it back): only the missing values need _text, and
        # mapping every value through Python took 0.3 s for three columns of 262k rows.
        out = s.astype(object, copy=True)
        missing = s.isna().to_numpy()
        if missing.any():
            out[missing] = [_text(v) for v in s[missing]]
        return out
    return s.map(_text).astype(object)


def row_hashes(rows: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """uint64 per row of `rows[columns]`, independent of the frame's index and of int/float spelling."""
    canon = pd.DataFrame({c: _canonical(rows[c]) for c in columns})
    return pd.util.hash_pandas_object(canon, index=False).to_numpy(dtype=np.uint64)


def unseen(rows: pd.DataFrame, columns: Sequence[str], seen: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows whose hash is not in `seen`."""
    return ~np.isin(row_hashes(rows, columns), seen)
