"""Ranking configs by the study metric, respecting its direction (accuracy is maximised). Pure."""
from __future__ import annotations

import math
from collections.abc import Sequence

from cerebro_ops.core.run_state import EpochEntry, ModelStatus, RunState


def best_value(history: Sequence[EpochEntry], metric: str, direction: str) -> tuple[float | None, EpochEntry | None]:
    """The best epoch entry for a metric; NaN/missing values never win."""
    vals = [h for h in history if isinstance(h.value(metric), (int, float)) and math.isfinite(h.value(metric))]
    if not vals:
        return None, None
    pick = min if direction == "min" else max
    best = pick(vals, key=lambda h: h.value(metric))
    return best.value(metric), best


# Rows without a rank: those still training first, failed ones last.
_UNRANKED_ORDER = {ModelStatus.RUNNING: 0, ModelStatus.FINISHED: 1, ModelStatus.PRUNED: 2, ModelStatus.FAILED: 3}


def is_ranked(row: dict, metric: str) -> bool:
    """Whether a leaderboard row competes: it has a value of the metric and did not fail."""
    return row[metric] is not None and row["status"] != ModelStatus.FAILED


def leaderboard_rows(state: RunState, metric: str, direction: str) -> list[dict]:
    """One row per config: the ranked ones best first by the direction, then the others (running, finished,
    pruned without a value of the metric, then failed). Ranks count every row; the ranked ones are 1..k."""
    rows = []
    for m, rec in state.models.items():
        value, entry = best_value(rec.history, metric, direction)
        rows.append({"model_id": m, "params": rec.params, "status": rec.status,
                     metric: value, "best_epoch": entry.epoch if entry else None,
                     "epochs": len(rec.history), "ckpt": entry.ckpt if entry else None, "reason": rec.reason})
    sign = 1 if direction == "min" else -1
    rows.sort(key=lambda r: (0, sign * r[metric], r["model_id"]) if is_ranked(r, metric)
              else (1, _UNRANKED_ORDER[r["status"]], r["model_id"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def best_row(rows: list[dict], metric: str) -> dict | None:
    """The winner of rows from :func:`leaderboard_rows`, or None when no row is ranked."""
    return rows[0] if rows and is_ranked(rows[0], metric) else None


def format_table(rows: list[dict], metric: str) -> str:
    head = f"{'rank':>4}  {'model':<6} {'status':<9} {metric:>12} {'epochs':>6}  params"
    lines = [head, "-" * len(head)]
    for r in rows:
        v = f"{r[metric]:.5f}" if r[metric] is not None else "-"
        params = ", ".join(f"{k}={_fmt(v2)}" for k, v2 in sorted(r["params"].items()))
        lines.append(f"{r['rank']:>4}  {r['model_id']:<6} {r['status']:<9} {v:>12} {r['epochs']:>6}  {params}")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
