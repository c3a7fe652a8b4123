"""Search strategies behind one interface (base.Searcher), chosen by the spec's ``search.method``.

    searcher = searcher_for(spec)
    searcher.batch_sizes()            # configs per batch: one batch (grid, random) or several (tpe)
    searcher.first_batch()            # the configs a run starts with (m000, m001, ...)
    searcher.ask(batch, history)      # a later batch, from the told results (batches.py reads them)

The search-space distributions are defined once, in core/distributions.py (below spec.py, which validates
with them). Pure: no Airflow, Spark or TensorFlow; Optuna is imported only when TPE asks.
"""
from __future__ import annotations

from cerebro_ops.core.errors import SpecError
from cerebro_ops.core.search.base import Config, History, OneBatchSearch, Searcher, model_id
from cerebro_ops.core.search.grid import GridSearch
from cerebro_ops.core.search.random_search import RandomSearch
from cerebro_ops.core.search.tpe import TpeSearch
from cerebro_ops.core.spec import StudySpec

__all__ = ["SEARCHERS", "Config", "GridSearch", "History", "OneBatchSearch", "RandomSearch", "Searcher",
           "TpeSearch", "model_id", "searcher_for"]

# One searcher per method the spec accepts (spec.METHODS); tests check the two agree.
SEARCHERS: dict[str, type[Searcher]] = {s.method: s for s in (GridSearch, RandomSearch, TpeSearch)}


def searcher_for(spec: StudySpec) -> Searcher:
    """The searcher of the spec's ``search.method``."""
    cls = SEARCHERS.get(spec.search.method)
    if cls is None:
        raise SpecError("search.method", f"{spec.search.method!r} is not a search method",
                        f"use one of {', '.join(SEARCHERS)}")
    return cls(spec)
