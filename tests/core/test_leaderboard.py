"""The leaderboard of a run state: best epoch per config in the metric's direction, failed configs last. Pure."""
import math

import pytest

from cerebro_ops.core.leaderboard import best_value, format_table, leaderboard_rows
from cerebro_ops.core.run_state import EpochEntry, ModelStatus, RunState


def entry(epoch, value, metric="val_accuracy"):
    return EpochEntry(epoch, {"train_loss": 1.0, metric: value}, {"ckpt": f"ckpt/e{epoch}.npz", "sha256": "s"})


def state_of(histories: dict, statuses: dict | None = None) -> RunState:
    state = RunState(run_id="r")
    for m, hist in histories.items():
        rec = state.add_model(m, {"lr": int(m[1:]) / 10})
        rec.history = hist
        rec.status = (statuses or {}).get(m, ModelStatus.FINISHED)
    return state


def test_best_value_ignores_nan_and_missing_values():
    hist = [entry(1, 0.7), entry(2, math.nan), entry(3, None), entry(4, 0.9), entry(5, 0.8)]
    assert best_value(hist, "val_accuracy", "max") == (0.9, hist[3])
    assert best_value(hist, "val_accuracy", "min") == (0.7, hist[0])
    assert best_value([entry(1, math.inf), entry(2, None)], "val_accuracy", "max") == (None, None)


@pytest.mark.parametrize("direction,order", [("max", ["m1", "m3", "m2", "m4", "m0"]),
                                             ("min", ["m2", "m3", "m1", "m4", "m0"])])
def test_rows_ranked_in_the_metric_direction_failed_and_empty_last(direction, order):
    state = state_of({"m0": [entry(1, 0.99)], "m1": [entry(1, 0.5), entry(2, 0.95)], "m2": [entry(1, 0.4)],
                      "m3": [entry(1, 0.6), entry(2, 0.45)], "m4": []},
                     {"m0": ModelStatus.FAILED, "m2": ModelStatus.PRUNED, "m4": ModelStatus.RUNNING})
    state.models["m0"].reason = "loss became nan"
    rows = leaderboard_rows(state, "val_accuracy", direction)
    assert [r["model_id"] for r in rows] == order
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    by_id = {r["model_id"]: r for r in rows}
    best_m1 = 2 if direction == "max" else 1
    assert by_id["m1"]["best_epoch"] == best_m1 and by_id["m1"]["ckpt"] == {"ckpt": f"ckpt/e{best_m1}.npz",
                                                                             "sha256": "s"}
    assert by_id["m1"]["epochs"] == 2 and by_id["m1"]["params"] == {"lr": 0.1}
    assert by_id["m0"]["status"] == "FAILED" and by_id["m0"]["reason"] == "loss became nan"
    assert by_id["m4"]["val_accuracy"] is None and by_id["m4"]["best_epoch"] is None
    table = format_table(rows, "val_accuracy")
    assert table.splitlines()[2].split()[:4] == ["1", order[0], str(by_id[order[0]]["status"]),
                                                 f"{by_id[order[0]]['val_accuracy']:.5f}"]
    assert "PRUNED" in table and "FAILED" in table and "RUNNING" in table
