"""The search-space distributions, each kind one small class, in one place.

A class says what its arguments are (spec.py validates a ``search.space`` entry with ``arity``, ``log`` and
``integer_bounds``, and a grid's with ``discrete``), how grid search enumerates it, how random search samples
it, and how TPE maps it to and from Optuna:

  choice       → CategoricalDistribution(values)   (lists as values: categorical over their indices)
  uniform      → FloatDistribution(low, high)
  loguniform   → FloatDistribution(low, high, log=True)
  quniform     → IntDistribution(low, high, step=q) for integer bounds and q, else FloatDistribution(step=q)
  qloguniform  → IntDistribution(low, high, log=True) for q == 1 and integer bounds, else
                 FloatDistribution(log=True) quantised to q afterwards (Optuna has no log-with-step)
  int          → IntDistribution(low, high)

Below spec.py, which parses entries into :class:`Param` and checks them here; the search strategies
(core/search) only call the methods. Pure: Optuna is imported only by ``to_optuna``.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, ClassVar

from cerebro_ops.core.errors import SpecError


@dataclass(frozen=True)
class Param:
    """One search-space entry of the spec."""

    name: str
    kind: str
    args: tuple  # choice: values; uniform/loguniform: (low, high); q*: (low, high, q); int: (low, high)


def quantize(x: float, q: float, low: float, high: float) -> float:
    v = round(x / q) * q
    # keep the value inside the bounds after rounding, on the grid when possible
    while v > high + 1e-12:
        v -= q
    while v < low - 1e-12:
        v += q
    v = round(v, 12)
    return int(v) if float(q).is_integer() and float(v).is_integer() else v


def _is_int(x) -> bool:
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


def _plain(v: Any) -> Any:
    """Config values are JSON-like: a list value is stored as a tuple in the frozen spec."""
    return list(v) if isinstance(v, tuple) else v


class Distribution:
    """One parameter's distribution. Subclasses are frozen dataclasses of the spec's arguments."""

    kind: ClassVar[str]
    arity: ClassVar[int | None] = 2  # numbers in the argument list; None: a list of values
    log: ClassVar[bool] = False  # uniform in log space, so the bounds must be positive
    integer_bounds: ClassVar[bool] = False  # the bounds must be integers
    discrete: ClassVar[bool] = False  # grid search can enumerate it

    @classmethod
    def from_args(cls, args: tuple) -> Distribution:
        return cls(*args)

    def grid(self) -> list:
        raise TypeError(f"{self.kind} has no grid")

    def sample(self, rng: random.Random) -> Any:
        raise NotImplementedError

    def to_optuna(self):
        raise NotImplementedError

    def decode(self, v: Any) -> Any:
        """Optuna's value → the config's."""
        return v

    def encode(self, v: Any) -> Any:
        """The config's value → Optuna's (the inverse of decode, for telling the history)."""
        return float(v)


@dataclass(frozen=True)
class Choice(Distribution):
    values: tuple
    kind: ClassVar[str] = "choice"
    arity: ClassVar[int | None] = None
    discrete: ClassVar[bool] = True

    @classmethod
    def from_args(cls, args: tuple) -> Choice:
        return cls(tuple(args))

    def _scalar(self) -> bool:
        """Optuna's categoricals hold scalars; list values are chosen by index."""
        return all(v is None or isinstance(v, (bool, int, float, str)) for v in self.values)

    def grid(self) -> list:
        return [_plain(v) for v in self.values]

    def sample(self, rng: random.Random) -> Any:
        return _plain(self.values[rng.randrange(len(self.values))])

    def to_optuna(self):
        from optuna.distributions import CategoricalDistribution
        return CategoricalDistribution(list(self.values) if self._scalar() else list(range(len(self.values))))

    def decode(self, v: Any) -> Any:
        return _plain(v if self._scalar() else self.values[int(v)])

    def encode(self, v: Any) -> Any:
        return v if self._scalar() else self.grid().index(v)


@dataclass(frozen=True)
class Int(Distribution):
    low: int
    high: int
    kind: ClassVar[str] = "int"
    integer_bounds: ClassVar[bool] = True
    discrete: ClassVar[bool] = True

    def grid(self) -> list:
        return list(range(int(self.low), int(self.high) + 1))

    def sample(self, rng: random.Random) -> int:
        return rng.randint(int(self.low), int(self.high))

    def to_optuna(self):
        from optuna.distributions import IntDistribution
        return IntDistribution(int(self.low), int(self.high))

    def encode(self, v: Any) -> int:
        return int(v)


@dataclass(frozen=True)
class _Continuous(Distribution):
    """[low, high] of floats, sampled uniformly in value or (log) in log space."""

    low: float
    high: float

    def to_optuna(self):
        from optuna.distributions import FloatDistribution
        return FloatDistribution(float(self.low), float(self.high), log=self.log)


@dataclass(frozen=True)
class Uniform(_Continuous):
    kind: ClassVar[str] = "uniform"

    def sample(self, rng: random.Random) -> float:
        return rng.uniform(self.low, self.high)


@dataclass(frozen=True)
class LogUniform(_Continuous):
    kind: ClassVar[str] = "loguniform"
    log: ClassVar[bool] = True

    def sample(self, rng: random.Random) -> float:
        # bounds are values (not logs); uniform in natural-log space
        return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))


@dataclass(frozen=True)
class _Stepped(Distribution):
    """[low, high, q]: the values are multiples of q inside [low, high]."""

    low: float
    high: float
    q: float
    arity: ClassVar[int | None] = 3

    def _integer(self) -> bool:
        return all(_is_int(x) for x in (self.low, self.high, self.q))

    def encode(self, v: Any) -> Any:
        return int(v) if self._integer() else float(v)


@dataclass(frozen=True)
class QUniform(_Stepped):
    kind: ClassVar[str] = "quniform"

    def sample(self, rng: random.Random) -> float:
        return quantize(rng.uniform(self.low, self.high), self.q, self.low, self.high)

    def to_optuna(self):
        from optuna.distributions import FloatDistribution, IntDistribution

        low, high, q = self.low, self.high, self.q
        # sampled values are multiples of q: Optuna's steps must start on that grid, not at an off-grid low
        if self._integer():
            low, q = -(-int(low) // int(q)) * int(q), int(q)
            return IntDistribution(low, low + (int(high) - low) // q * q, step=q)
        if abs(low / q - round(low / q)) > 1e-9:
            low = round(math.ceil(low / q) * q, 12)
        hi = low + math.floor((high - low) / q + 1e-9) * q  # Optuna needs (high - low) divisible by q
        return FloatDistribution(float(low), float(round(hi, 12)), step=float(q))

    def decode(self, v: Any) -> Any:
        return quantize(v, self.q, self.low, self.high) if isinstance(v, float) else v


@dataclass(frozen=True)
class QLogUniform(_Stepped):
    kind: ClassVar[str] = "qloguniform"
    log: ClassVar[bool] = True

    def _integer(self) -> bool:
        return super()._integer() and int(self.q) == 1

    def sample(self, rng: random.Random) -> float:
        x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return quantize(x, self.q, self.low, self.high)

    def to_optuna(self):
        from optuna.distributions import FloatDistribution, IntDistribution

        if self._integer():
            return IntDistribution(int(self.low), int(self.high), log=True)
        return FloatDistribution(float(self.low), float(self.high), log=True)

    def decode(self, v: Any) -> Any:
        return v if isinstance(v, int) else quantize(float(v), self.q, self.low, self.high)


# In the order the spec's error messages list them.
DISTRIBUTIONS: dict[str, type[Distribution]] = {
    c.kind: c for c in (Choice, Uniform, QUniform, LogUniform, QLogUniform, Int)}


def distribution(p: Param) -> Distribution:
    """The distribution of a search-space entry."""
    cls = DISTRIBUTIONS.get(p.kind)
    if cls is None:
        raise SpecError(f"search.space.{p.name}", f"unknown distribution {p.kind!r}", "see the README")
    return cls.from_args(p.args)
