"""prepare_summary: every row read is accounted for, each column's missing values say what was done."""
from __future__ import annotations

from cerebro_ops.core.prepare_summary import build_summary, summary_lines, worst_columns
from cerebro_ops.core.spec import parse_spec


def spec(missing="impute"):
    return parse_spec({"name": "s", "data": {"source": "x.csv", "label": "y", "task": "regression",
                                             "numeric": ["a", "k"], "categorical": ["c"], "datetime": ["t"],
                                             "missing": missing},
                       "model": {"builder": "m:f"}, "search": {"method": "grid", "space": {"lr": [0.1]}}})


STATS = {"a": {"mean": 2.0, "std": 1.5, "fill": 1.75, "constant": False},
         "k": {"mean": 19.0, "std": 19.0, "fill": 19.0, "constant": True},
         **{f"t.{p}": {"mean": 1.0, "std": 1.0, "fill": 1.0, "constant": False} for p in ("year", "hour")}}
COUNTS = {"rows": 100, "label": 7, "any": 60, "columns": {"a": 40, "k": 0, "t": 12, "c": 30}}


def test_summary_accounts_for_every_row_and_says_what_was_done():
    s = build_summary(spec(), COUNTS, {"missing label": 7}, {"train": 74, "val": 19}, STATS, ["a"], ["c"],
                      {"c": {"distinct": 900, "kept": 50, "other_rows": 120}})
    assert s["rows_read"] == s["rows_used"] + sum(s["dropped"].values()) == 100
    assert s["columns"] == {
        "a": {"missing": 40, "share": 0.4, "action": "imputed with the train median 1.75 + a 0/1 missing indicator"},
        "t": {"missing": 12, "share": 0.12, "action": "parts imputed with train medians (none missing in train)"},
        "c": {"missing": 30, "share": 0.3, "action": "own category <missing>"}}
    assert s["constant"] == {"k": {"mean": 19.0, "scaled_by": 19.0}}
    assert summary_lines(s) == [
        "rows read 100, used 93 (train 74, validation 19), dropped 7 (missing label 7)",
        "'a': 40 missing (40.0%) -> imputed with the train median 1.75 + a 0/1 missing indicator",
        "'t': 12 missing (12.0%) -> parts imputed with train medians (none missing in train)",
        "'c': 30 missing (30.0%) -> own category <missing>",
        "'k': constant in train (mean 19), centred and scaled by 19",
        "'c': 900 distinct values, top 50 kept (data.max_categories), 120 train rows -> <other>"]


def test_drop_policy_and_worst_columns():
    s = build_summary(spec("drop"), COUNTS, {"missing label": 7, "missing feature": 60}, {"train": 26, "val": 7},
                      STATS, [], [], {})
    assert {c: v["action"] for c, v in s["columns"].items()} == {"a": "rows dropped", "t": "rows dropped",
                                                                 "c": "rows dropped"}
    assert summary_lines(s)[0].endswith("dropped 67 (missing label 7, missing feature 60)")
    assert worst_columns(COUNTS["columns"]) == "'a' (40 rows), 'c' (30 rows), 't' (12 rows)"
    assert summary_lines({}) == []
