"""Search spaces: grid and seeded random sampling; TPE through Optuna's ask-and-tell (see tpe.py).

Each parameter draws from its own random stream, seeded by (study seed, parameter name), so adding a
parameter never changes the values drawn for the others (the original system shared one stream).
Pure: no Airflow, Spark or TensorFlow.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

from cerebro_ops.core.errors import SpecError
from cerebro_ops.core.spec import MAX_CONFIGS, Param, StudySpec


@dataclass(frozen=True)
class Config:
    model_id: str
    params: dict[str, Any]


def model_id(index: int) -> str:
    return f"m{index:03d}"


def grid_values(p: Param) -> list:
    if p.kind == "choice":
        return [list(v) if isinstance(v, tuple) else v for v in p.args]
    if p.kind == "int":
        return list(range(int(p.args[0]), int(p.args[1]) + 1))
    raise SpecError(f"search.space.{p.name}", "grid search needs discrete values", "use choice or int")


def grid_configs(space: tuple[Param, ...]) -> list[dict]:
    axes = [grid_values(p) for p in space]
    size = math.prod(len(a) for a in axes)
    if size > MAX_CONFIGS:
        raise SpecError("search.space", f"the grid has {size} points", f"keep it at most {MAX_CONFIGS}")
    return [dict(zip([p.name for p in space], combo)) for combo in itertools.product(*axes)]


def sample_param(p: Param, rng: random.Random) -> Any:
    a = p.args
    if p.kind == "choice":
        v = a[rng.randrange(len(a))]
        return list(v) if isinstance(v, tuple) else v
    if p.kind == "int":
        return rng.randint(int(a[0]), int(a[1]))
    if p.kind == "uniform":
        return rng.uniform(a[0], a[1])
    if p.kind == "loguniform":  # bounds are values (not logs); uniform in natural-log space
        return math.exp(rng.uniform(math.log(a[0]), math.log(a[1])))
    if p.kind == "quniform":
        return _quantize(rng.uniform(a[0], a[1]), a[2], a[0], a[1])
    if p.kind == "qloguniform":
        return _quantize(math.exp(rng.uniform(math.log(a[0]), math.log(a[1]))), a[2], a[0], a[1])
    raise SpecError(f"search.space.{p.name}", f"unknown distribution {p.kind!r}", "see the README")


def _quantize(x: float, q: float, low: float, high: float) -> float:
    v = round(x / q) * q
    # keep the value inside the bounds after rounding, on the grid when possible
    while v > high + 1e-12:
        v -= q
    while v < low - 1e-12:
        v += q
    v = round(v, 12)
    return int(v) if float(q).is_integer() and float(v).is_integer() else v


def random_configs(space: tuple[Param, ...], n: int, seed: int) -> list[dict]:
    streams = {p.name: random.Random(f"{seed}:{p.name}") for p in space}
    return [{p.name: sample_param(p, streams[p.name]) for p in space} for _ in range(n)]


def sample_configs(spec: StudySpec) -> list[Config]:
    """The configs trained together by MOP (for TPE: the first batch; tpe.py asks the rest)."""
    if spec.search.method == "grid":
        params = grid_configs(spec.search.space)
    elif spec.search.method == "tpe":  # the first batch; later batches are asked as results come in
        from cerebro_ops.core.tpe import first_batch
        return first_batch(spec)
    else:
        params = random_configs(spec.search.space, spec.search.num_configs, spec.seed)
    return [Config(model_id(i), p) for i, p in enumerate(params)]
