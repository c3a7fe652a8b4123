"""row_hashes: one canonical form per value, whichever way a column spells it; the text fast path hashes
exactly as mapping every value did."""
import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from cerebro_ops.core.row_hashes import row_hashes, unseen


def _reference(rows: pd.DataFrame, columns) -> np.ndarray:
    """The per-value canonical form, value by value (the definition the fast path must match)."""
    def canon(s):
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            return s.astype(np.float64)
        return s.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).astype(object)
    frame = pd.DataFrame({c: canon(rows[c]) for c in columns})
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(dtype=np.uint64)


MISSING = st.sampled_from([None, float("nan"), pd.NA])
TEXT = st.text(max_size=6)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(TEXT, MISSING), min_size=1, max_size=30),
       st.lists(st.one_of(TEXT, st.integers(-5, 5), st.floats(allow_nan=True), MISSING, st.booleans()),
                min_size=1, max_size=30))
def test_hashes_match_the_value_by_value_definition(texts, mixed):
    n = min(len(texts), len(mixed))
    rows = pd.DataFrame({"t": pd.Series(texts[:n], dtype=object), "m": pd.Series(mixed[:n], dtype=object),
                         "x": np.arange(n, dtype=np.int64)})
    cols = ["t", "m", "x"]
    assert row_hashes(rows, cols).tolist() == _reference(rows, cols).tolist()


def test_a_row_hashes_alike_however_its_frame_spells_it():
    a = pd.DataFrame({"carrier": ["UA", None, "AA"], "dist": [100, 200, 300]}, index=[7, 8, 9])
    b = pd.DataFrame({"carrier": pd.Series(["UA", np.nan, "AA"], dtype=object), "dist": [100.0, 200.0, 300.0]})
    ha, hb = row_hashes(a, ["carrier", "dist"]), row_hashes(b, ["carrier", "dist"])
    assert ha.tolist() == hb.tolist()
    assert len(set(ha.tolist())) == 3  # different rows, different hashes
    # a missing text is not the text "None"
    c = pd.DataFrame({"carrier": ["UA", "None", "AA"], "dist": [100, 200, 300]})
    assert row_hashes(c, ["carrier", "dist"])[1] != ha[1]


def test_unseen_marks_rows_whose_hash_was_not_recorded():
    train = pd.DataFrame({"c": ["a", "b", None], "v": [1, 2, 3]})
    val = pd.DataFrame({"c": ["b", "z", None, None], "v": [2, 2, 3, 4]})
    assert unseen(val, ["c", "v"], row_hashes(train, ["c", "v"])).tolist() == [False, True, False, True]
