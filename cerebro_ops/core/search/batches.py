"""A run's batches: the configs it starts with, each later batch asked from the results told so far, and the
run state's record of them. A replay takes the recorded run's configs and batches instead of asking.

Kept apart from the searchers: these read the run state, the searchers only the spec.
"""
from __future__ import annotations

from cerebro_ops.core.leaderboard import best_value
from cerebro_ops.core.run_state import ModelStatus, ReplayOf, RunState, TpeBatches
from cerebro_ops.core.search.base import Config, Searcher, model_id


def told_results(state: RunState, metric: str, direction: str) -> list[tuple[dict, float | None]]:
    """What the searcher is told of the run's configs so far, in model id order: each config's best value of
    `metric` (pruned ones: of the epochs they trained), None for a failed config."""
    return [(r.params, None if r.status is ModelStatus.FAILED else best_value(r.history, metric, direction)[0])
            for _, r in sorted(state.models.items())]


def start_configs(searcher: Searcher, recorded: RunState | None = None) -> list[Config]:
    """The configs a run starts with: the searcher's first batch, or for a replay of `recorded` its configs
    (of an adaptive search: its first batch)."""
    if recorded is None:
        return searcher.first_batch()
    ids = recorded.tpe.batches[0] if searcher.is_adaptive and recorded.tpe else sorted(recorded.models)
    return [Config(m, recorded.models[m].params) for m in ids]


def batch_record(searcher: Searcher, first: list[str], replay_of: ReplayOf | None) -> TpeBatches | None:
    """The run state's record of the batches, starting with the model ids `first`: None when the search has
    one batch; the planned sizes are the searcher's, or for a replay the recorded run's."""
    if not searcher.is_adaptive:
        return None
    if replay_of is not None and replay_of.batches:
        return TpeBatches([first], [len(b) for b in replay_of.batches])
    return TpeBatches([first], searcher.batch_sizes())


def next_configs(searcher: Searcher, state: RunState, batch: int) -> list[Config]:
    """Batch `batch`'s configs, given the results of the batches before it; model ids continue the run's."""
    start = len(state.models)
    planned = state.replay_of.batches if state.replay_of else None
    if planned:
        params = [state.replay_of.configs[m] for m in planned[batch]]
    else:
        train = searcher.spec.train
        params = searcher.ask(batch, told_results(state, train.metric, train.direction))
    return [Config(model_id(start + i), p) for i, p in enumerate(params)]
