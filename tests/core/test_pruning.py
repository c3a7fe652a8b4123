"""Pruner decisions on scripted metric histories: which config is stopped after which epoch.

`schedule` runs a pruner the way a study does (study._prune): after every epoch but the last, on the live
models' histories turned into lower-is-better values, and pruned models leave the live set.
"""
import math

import pytest

from cerebro_ops.core.pruning import (HyperbandPruner, MedianPruner, NoPruner, SuccessiveHalvingPruner, make_pruner,
                                 to_minimise)
from cerebro_ops.core.spec import PruningSpec

EPOCHS = 4
# val_loss per epoch (direction min). f diverged in epoch 1 (NaN counts as worst) and then became the best.
LOSS = {
    "a": [0.90, 0.80, 0.70, 0.60],
    "b": [0.50, 0.40, 0.30, 0.20],
    "c": [0.70, 0.60, 0.50, 0.40],
    "d": [0.60, 0.65, 0.20, 0.10],
    "e": [0.80, 0.30, 0.25, 0.15],
    "f": [math.nan, 0.10, 0.05, 0.01],
}
# the same runs scored by val_accuracy (direction max): the decisions must not change
ACCURACY = {m: [1.0 - v for v in h] for m, h in LOSS.items()}
BOTH_DIRECTIONS = pytest.mark.parametrize("raw,direction", [(LOSS, "min"), (ACCURACY, "max")], ids=["min", "max"])


def schedule(pruner, raw, direction, epochs=EPOCHS) -> dict[str, int]:
    """model -> the epoch after which it was pruned."""
    live, pruned = set(raw), {}
    for epoch in range(1, epochs):
        hist = {m: to_minimise(raw[m][:epoch], direction) for m in sorted(live)}
        for m in pruner.prune(hist, epoch):
            pruned[m] = epoch
        live -= set(pruned)
    return pruned


@BOTH_DIRECTIONS
def test_none_never_prunes(raw, direction):
    assert schedule(NoPruner(), raw, direction) == {}


@BOTH_DIRECTIONS
def test_median_stops_models_worse_than_the_median_each_epoch(raw, direction):
    # e1: median .75 of six -> a, e, f (NaN) go; e2: b .4 c .6 d .65 -> d; e3: b .3 c .5 -> c
    assert schedule(MedianPruner(1), raw, direction) == {"a": 1, "e": 1, "f": 1, "d": 2, "c": 3}
    # min_epochs=2 spares f's diverged first epoch; e2: median .5 -> a, c, d; e3: b .3 e .25 f .05 -> b
    assert schedule(MedianPruner(2), raw, direction) == {"a": 2, "c": 2, "d": 2, "b": 3}


@BOTH_DIRECTIONS
def test_asha_keeps_the_best_share_at_each_rung(raw, direction):
    # rf 2, rungs 1, 2, 4: e1 keeps b d c of six; e2 keeps b c of three; epoch 3 is not a rung
    assert schedule(SuccessiveHalvingPruner(1, 2), raw, direction) == {"a": 1, "e": 1, "f": 1, "d": 2}
    # rf 3, rungs 1, 3: e1 keeps b d; e3 keeps d, which overtook b
    assert schedule(SuccessiveHalvingPruner(1, 3), raw, direction) == {"a": 1, "c": 1, "e": 1, "f": 1, "b": 3}


@BOTH_DIRECTIONS
def test_hyperband_brackets_halve_at_their_own_rungs(raw, direction):
    hb = HyperbandPruner(min_epochs=1, reduction_factor=2, max_epochs=EPOCHS, all_models=sorted(raw))
    assert hb.bracket == {"a": 0, "b": 1, "c": 2, "d": 0, "e": 1, "f": 2}
    # bracket 0 (a, d) halves at 1; bracket 1 (b, e) at 2; bracket 2 (c, f) first at 4, the last epoch,
    # so f survives its NaN epoch there
    assert schedule(hb, raw, direction) == {"a": 1, "b": 2}


def test_direction_decides_what_is_worse():
    # the loss histories read as accuracies: the low values are now the bad ones; NaN stays worst.
    # e1: b .5 d .6 f NaN go; e2: a .8 c .6 e .3 -> e; e3: a .7 c .5 -> c
    assert schedule(MedianPruner(1), LOSS, "max") == {"b": 1, "d": 1, "f": 1, "e": 2, "c": 3}
    # e1 keeps the two highest, a .9 and e .8; e3: a .7 beats e .25
    assert schedule(SuccessiveHalvingPruner(1, 3), LOSS, "max") == {"b": 1, "c": 1, "d": 1, "f": 1, "e": 3}


def test_to_minimise():
    assert to_minimise([0.9, 0.2], "max") == [-0.9, -0.2]
    assert to_minimise([0.9, 0.2], "min") == [0.9, 0.2]
    assert all(math.isnan(v) for v in to_minimise([None, None], "max"))


def test_successive_halving_rungs():
    sh = SuccessiveHalvingPruner(min_epochs=1, reduction_factor=3)
    assert [sh.is_rung(e) for e in range(1, 10)] == [True, False, True, False, False, False, False, False, True]
    assert [SuccessiveHalvingPruner(2, 2).is_rung(e) for e in range(1, 9)] == [False, True, False, True,
                                                                               False, False, False, True]
    nine = {f"m{i}": [i / 10] * 3 for i in range(9)}
    assert sh.prune(nine, 1) == {f"m{i}" for i in range(3, 9)}
    assert sh.prune({"only": [1.0]}, 1) == set(), "a lone model is never pruned"


def test_factory_builds_each_method_from_the_spec():
    models = ["a", "b", "c"]
    assert isinstance(make_pruner(PruningSpec(), 6, models), NoPruner)
    median = make_pruner(PruningSpec("median", 2), 6, models)
    assert isinstance(median, MedianPruner) and median.min_epochs == 2
    asha = make_pruner(PruningSpec("asha", 1, 3), 6, models)
    assert isinstance(asha, SuccessiveHalvingPruner) and (asha.min_epochs, asha.rf) == (1, 3)
    hb = make_pruner(PruningSpec("hyperband", 1, 2), 4, models)
    assert isinstance(hb, HyperbandPruner) and sorted(hb.halvings) == [0, 1, 2]
