"""Epoch-boundary pruning for MOP: small strategies over a recorded history. Pure.

MOP trains all live models in lock-step, one epoch at a time, so decisions are synchronous: after
epoch e every live model has a value for e, and a strategy returns the models to stop. Optuna's pruners
compare a running trial against *completed* trials, which never exist mid-study in lock-step training,
so the rules are implemented here, each in a few lines, and tested on scripted metric sequences.

Values are "lower is better": the caller negates metrics that are maximised (`to_minimise`). A missing
value, NaN or ±inf counts as worst.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

from cerebro_ops.core.spec import PruningSpec


def _score(v: float | None) -> float:
    return math.inf if v is None or not math.isfinite(v) else v


class Pruner(ABC):
    @abstractmethod
    def prune(self, histories: dict[str, list[float]], epoch: int) -> set[str]:
        """histories: live model → its values for epochs 1..epoch. Returns the models to stop now."""


class NoPruner(Pruner):
    def prune(self, histories, epoch):
        return set()


class MedianPruner(Pruner):
    """Stop a model whose value at this epoch is worse than the median of all live models'."""

    def __init__(self, min_epochs: int = 1):
        self.min_epochs = min_epochs

    def prune(self, histories, epoch):
        if epoch < self.min_epochs or len(histories) < 2:
            return set()
        vals = sorted(_score(h[epoch - 1]) for h in histories.values())
        n = len(vals)
        median = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
        return {m for m, h in histories.items() if _score(h[epoch - 1]) > median}


class SuccessiveHalvingPruner(Pruner):
    """Synchronous successive halving (the rule ASHA makes asynchronous): at rung epochs
    min_epochs · rf^k keep the best ⌈n / rf⌉ of the models that reached the rung."""

    def __init__(self, min_epochs: int = 1, reduction_factor: int = 3):
        self.min_epochs = min_epochs
        self.rf = reduction_factor

    def is_rung(self, epoch: int) -> bool:
        r = self.min_epochs
        while r < epoch:
            r *= self.rf
        return r == epoch

    def prune(self, histories, epoch):
        if not self.is_rung(epoch) or len(histories) < 2:
            return set()
        ranked = sorted(histories, key=lambda m: (_score(histories[m][epoch - 1]), m))
        keep = max(1, math.ceil(len(ranked) / self.rf))
        return set(ranked[keep:])


class HyperbandPruner(Pruner):
    """Hyperband: models are dealt round-robin into brackets; bracket s halves from epoch min·rf^s,
    so some brackets explore many models briefly and others few models for long."""

    def __init__(self, min_epochs: int, reduction_factor: int, max_epochs: int, all_models: list[str]):
        s_max = 0
        while min_epochs * reduction_factor ** (s_max + 1) <= max_epochs:
            s_max += 1
        self.bracket = {m: i % (s_max + 1) for i, m in enumerate(sorted(all_models))}
        self.halvings = {s: SuccessiveHalvingPruner(min_epochs * reduction_factor ** s, reduction_factor)
                         for s in range(s_max + 1)}

    def prune(self, histories, epoch):
        out: set[str] = set()
        for s, sh in self.halvings.items():
            group = {m: h for m, h in histories.items() if self.bracket.get(m) == s}
            out |= sh.prune(group, epoch)
        return out


def make_pruner(spec: PruningSpec, max_epochs: int, all_models: list[str]) -> Pruner:
    if spec.method == "median":
        return MedianPruner(spec.min_epochs)
    if spec.method == "asha":
        return SuccessiveHalvingPruner(spec.min_epochs, spec.reduction_factor)
    if spec.method == "hyperband":
        return HyperbandPruner(spec.min_epochs, spec.reduction_factor, max_epochs, all_models)
    return NoPruner()


def to_minimise(values: list[float | None], direction: str) -> list[float]:
    """A metric history as lower-is-better values (negated for direction max; None becomes NaN)."""
    return [(-v if direction == "max" else v) if v is not None else math.nan for v in values]
