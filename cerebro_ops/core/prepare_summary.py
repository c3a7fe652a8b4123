"""What prepare did to the user's rows, as data (meta.json's `summary`) and as lines a person reads (the CLI,
the MLflow parent run's prepare_summary.txt, the study pages).

Every row read is accounted for: rows used for training and validation plus rows dropped, each with its
reason; each column with missing values says how many and what was done with them.

Pure: no Spark, TensorFlow or MLflow.
"""
from __future__ import annotations

from typing import Mapping


def worst_columns(missing: Mapping[str, int], top: int = 3) -> str:
    """'a (120 rows), b (7 rows)': the columns with the most missing values, most first."""
    ranked = sorted(((n, c) for c, n in missing.items() if n), key=lambda t: (-t[0], t[1]))[:top]
    return ", ".join(f"{c!r} ({n} rows)" for n, c in ranked) or "none"


# shape: eight parameters, the pieces prepare learned in its passes, each from its own aggregation.
def build_summary(spec, counts: dict, dropped: dict, rows: dict, stats: dict, indicators: list,
                  missing_slots: list, cardinality: dict) -> dict:
    """The summary of one prepare (JSON-able): rows read, used and dropped by reason, per-column missing values
    and their treatment, constant numeric columns, categorical columns cut to their top values."""
    d = spec.data
    read = counts["rows"]
    columns = {}
    for c, n in counts["columns"].items():
        if n:
            columns[c] = {"missing": n, "share": round(n / read, 6) if read else 0.0,
                          "action": _action(spec, c, stats, indicators, missing_slots)}
    constant = {slot: {"mean": s["mean"], "scaled_by": s["std"]} for slot, s in stats.items() if s.get("constant")}
    cut = {c: info for c, info in cardinality.items() if info["distinct"] > info["kept"]}
    return {"rows_read": read, "rows_used": rows.get("train", 0) + rows.get("val", 0),
            "train_rows": rows.get("train", 0), "val_rows": rows.get("val", 0),
            "dropped": dict(dropped), "missing_policy": d.missing,
            "columns": columns, "constant": constant, "categories_cut": cut,
            "max_categories": d.max_categories}


def _action(spec, column: str, stats: dict, indicators: list, missing_slots: list) -> str:
    d = spec.data
    if d.missing == "drop":
        return "rows dropped"
    if column in d.categorical:
        return "own category <missing>" if column in missing_slots else "<other> (none missing in train)"
    if any(a.name == column for a in d.arrays):
        return "filled with 0"
    slot = column if column in d.numeric else f"{column}.year"
    fill = stats.get(slot, {}).get("fill")
    what = f"imputed with the train median {fill:.6g}" if column in d.numeric else "parts imputed with train medians"
    return what + (" + a 0/1 missing indicator" if column in indicators else " (none missing in train)")


def summary_lines(summary: Mapping) -> list[str]:
    """The summary as short lines: the row account first, then one line per column with something to say."""
    if not summary:
        return []
    dropped = {k: v for k, v in summary.get("dropped", {}).items() if v}
    why = f" ({', '.join(f'{reason} {n}' for reason, n in dropped.items())})" if dropped else ""
    lines = [f"rows read {summary['rows_read']}, used {summary['rows_used']} (train {summary['train_rows']}, "
             f"validation {summary['val_rows']}), dropped {sum(dropped.values())}{why}"]
    for c, info in summary.get("columns", {}).items():
        lines.append(f"{c!r}: {info['missing']} missing ({info['share']:.1%}) -> {info['action']}")
    for slot, info in summary.get("constant", {}).items():
        lines.append(f"{slot!r}: constant in train (mean {info['mean']:.6g}), centred and scaled by "
                     f"{info['scaled_by']:.6g}")
    for c, info in summary.get("categories_cut", {}).items():
        lines.append(f"{c!r}: {info['distinct']} distinct values, top {info['kept']} kept "
                     f"(data.max_categories), {info['other_rows']} train rows -> <other>")
    return lines
