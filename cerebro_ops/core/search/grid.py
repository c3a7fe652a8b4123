"""Grid search: every combination of the space's discrete values, in one batch (the spec's order)."""
from __future__ import annotations

import itertools
import math
from typing import Sequence

from cerebro_ops.core.distributions import Param, distribution
from cerebro_ops.core.errors import SpecError
from cerebro_ops.core.search.base import OneBatchSearch
from cerebro_ops.core.spec import MAX_CONFIGS


def grid_values(p: Param) -> list:
    d = distribution(p)
    if not d.discrete:
        raise SpecError(f"search.space.{p.name}", "grid search needs discrete values", "use choice or int")
    return d.grid()


def grid_configs(space: Sequence[Param]) -> list[dict]:
    axes = [grid_values(p) for p in space]
    size = math.prod(len(a) for a in axes)
    if size > MAX_CONFIGS:
        raise SpecError("search.space", f"the grid has {size} points", f"keep it at most {MAX_CONFIGS}")
    return [dict(zip([p.name for p in space], combo)) for combo in itertools.product(*axes)]


class GridSearch(OneBatchSearch):
    method = "grid"

    def batch_sizes(self) -> list[int]:
        # counted, not built: the plan and the trigger check ask for it (search.num_configs plays no part)
        return [math.prod(len(grid_values(p)) for p in self.spec.search.space)]

    def configs(self) -> list[dict]:
        return grid_configs(self.spec.search.space)
