"""The interface every search strategy implements.

A searcher is built from the study spec and plans the run's configs in batches that MOP trains together:
``batch_sizes()`` (one batch for grid and random; several for TPE), and ``ask(batch, history)`` gives the params
of one batch. ``history`` is what the searcher is told: the earlier batches' params with each config's best
value (None: failed). A searcher keeps no state between calls, so ``ask`` is a pure function of the spec, the
batch and the history; an interrupted run that resumes asks exactly what the uninterrupted run asked.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from cerebro_ops.core.spec import StudySpec

History = Sequence[tuple[dict, float | None]]  # (params, best value; None: the config failed)


@dataclass(frozen=True)
class Config:
    model_id: str
    params: dict[str, Any]


def model_id(index: int) -> str:
    return f"m{index:03d}"


class Searcher(ABC):
    """A search strategy. Subclasses set ``method`` (one of the spec's METHODS) and register in
    ``cerebro_ops.core.search.SEARCHERS``."""

    method: ClassVar[str]
    # Later batches are asked from the results of earlier ones: the plan has a group of epoch steps per
    # batch with a next_batch step between groups, and the run state records the batches asked so far.
    is_adaptive: ClassVar[bool] = False

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec

    @abstractmethod
    def batch_sizes(self) -> list[int]:
        """Configs per batch, as planned from the spec."""

    @abstractmethod
    def ask(self, batch: int, history: History = ()) -> list[dict]:
        """The params of batch `batch` (0-based), given the told results of the batches before it."""

    @property
    def num_batches(self) -> int:
        return len(self.batch_sizes())

    @property
    def total_configs(self) -> int:
        return sum(self.batch_sizes())

    def first_batch(self) -> list[Config]:
        """The configs a run starts with, with their model ids (m000, m001, ...)."""
        return [Config(model_id(i), p) for i, p in enumerate(self.ask(0))]


class OneBatchSearch(Searcher):
    """All configs fixed before training, in one batch; results told change nothing."""

    @abstractmethod
    def configs(self) -> list[dict]:
        """The params of every config."""

    def ask(self, batch: int, history: History = ()) -> list[dict]:
        if batch != 0:
            raise ValueError(f"{self.method} search has one batch, not batch {batch}")
        return self.configs()
