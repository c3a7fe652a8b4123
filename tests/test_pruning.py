"""Pruner decisions on scripted metric sequences."""
import math

from cerebro_ops.pruning import (HyperbandPruner, MedianPruner, NoPruner, SuccessiveHalvingPruner, make_pruner,
                                 to_minimise)
from cerebro_ops.spec import PruningSpec

H = {"a": [0.9, 0.8, 0.7], "b": [0.5, 0.4, 0.3], "c": [0.7, 0.6, 0.5], "d": [0.6, 0.65, 0.2]}


def test_none_never_prunes():
    assert NoPruner().prune(H, 2) == set()


def test_median_prunes_worse_than_median():
    assert MedianPruner(1).prune(H, 1) == {"a", "c"}          # median of .9 .5 .7 .6 = .65
    assert MedianPruner(2).prune(H, 1) == set()               # before min_epochs
    assert MedianPruner(1).prune({"a": [math.nan], "b": [0.1], "c": [0.2]}, 1) == {"a"}


def test_successive_halving_keeps_top_third_at_rungs():
    sh = SuccessiveHalvingPruner(min_epochs=1, reduction_factor=3)
    assert [sh.is_rung(e) for e in range(1, 10)] == [True, False, True, False, False, False, False, False, True]
    nine = {f"m{i}": [i / 10] * 3 for i in range(9)}
    assert sh.prune(nine, 1) == {f"m{i}" for i in range(3, 9)}
    assert sh.prune(nine, 2) == set()
    assert SuccessiveHalvingPruner(1, 2).prune(H, 1) == {"a", "c"}


def test_hyperband_brackets_halve_at_different_epochs():
    models = [f"m{i}" for i in range(6)]
    hb = HyperbandPruner(min_epochs=1, reduction_factor=2, max_epochs=4, all_models=models)
    assert sorted(set(hb.bracket.values())) == [0, 1, 2]
    hist = {m: [i / 10] * 4 for i, m in enumerate(models)}
    # epoch 1: only bracket 0 (m0, m3) is at a rung → its worse model goes
    assert hb.prune(hist, 1) == {"m3"}
    # epoch 2: bracket 0 (rung 2) and bracket 1 (m1, m4; first rung 2)
    assert hb.prune({m: hist[m] for m in ("m0", "m1", "m2", "m4", "m5")}, 2) == {"m4"}


def test_direction_is_respected():
    assert to_minimise([0.9, None], "max")[0] == -0.9 and math.isnan(to_minimise([0.9, None], "max")[1])


def test_factory():
    assert isinstance(make_pruner(PruningSpec("asha", 1, 3), 6, ["a"]), SuccessiveHalvingPruner)
    assert isinstance(make_pruner(PruningSpec(), 6, ["a"]), NoPruner)
