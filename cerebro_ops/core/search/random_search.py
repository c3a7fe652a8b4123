"""Seeded random search: ``search.num_configs`` configs in one batch.

Each parameter draws from its own random stream, seeded by (study seed, parameter name), so adding a
parameter never changes the values drawn for the others (the original system shared one stream).
"""
from __future__ import annotations

import random
from typing import Sequence

from cerebro_ops.core.distributions import Param, distribution
from cerebro_ops.core.search.base import OneBatchSearch


def random_configs(space: Sequence[Param], n: int, seed: int) -> list[dict]:
    streams = [(p.name, distribution(p), random.Random(f"{seed}:{p.name}")) for p in space]
    return [{name: d.sample(rng) for name, d, rng in streams} for _ in range(n)]


class RandomSearch(OneBatchSearch):
    method = "random"

    def batch_sizes(self) -> list[int]:
        return [self.spec.search.num_configs]

    def configs(self) -> list[dict]:
        return random_configs(self.spec.search.space, self.spec.search.num_configs, self.spec.seed)
