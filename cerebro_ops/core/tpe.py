"""TPE search through Optuna's ask-and-tell, in batches that MOP trains together.

A study with ``search.method: tpe`` trains ``search.num_configs`` configs in batches of
``search.batch_size`` (0 → ``max(2, num_configs // 3)``). Each batch is asked from Optuna, trained with MOP for
all epochs, and told back (each config's best value of ``train.metric`` in ``train.direction``) before the
next batch is asked. Model ids continue across batches (m000, m001, ... ); the leaderboard covers all batches.

Determinism: batch ``b`` is a pure function of (seed, b, the configs and results of batches < b). The
sampler is rebuilt for every batch (``TPESampler(seed=derive(seed, b))``) and the history is added as finished
trials, so an interrupted run that resumes asks exactly the batch the uninterrupted run would have asked.
The first batch is TPE's random start-up phase (``n_startup_trials`` = first batch size); later batches are
TPE proposals (``constant_liar`` keeps the proposals of one batch apart from each other).

Where it runs: the batches are steps of the run's plan (plan.py), the same for the CLI and Airflow. Batch
``b``'s epoch steps (``study.run_epoch(..., epoch, batch=b)``, epochs counted from 1 in every batch) train its
configs; then ``study.next_batch(..., b)`` finishes them, tells their results and asks batch ``b + 1``
(:func:`next_configs`). The run state keeps the batches asked so far (``RunState.tpe``).

Mapping of our distributions to Optuna's:
  choice       → CategoricalDistribution(values)   (lists as values: categorical over their indices)
  uniform      → FloatDistribution(low, high)
  loguniform   → FloatDistribution(low, high, log=True)
  quniform     → IntDistribution(low, high, step=q) for integer bounds and q, else FloatDistribution(step=q)
  qloguniform  → IntDistribution(low, high, log=True) for q == 1 and integer bounds, else
                 FloatDistribution(log=True) quantised to q afterwards (Optuna has no log-with-step)
  int          → IntDistribution(low, high)
Pure: imports Optuna, no Airflow, Spark or TensorFlow.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Sequence

from cerebro_ops.core.errors import SpecError
from cerebro_ops.core.run_state import ModelStatus, ReplayOf, RunState
from cerebro_ops.core.search import Config, _quantize, model_id
from cerebro_ops.core.spec import Param, StudySpec

log = logging.getLogger("cerebro_ops.core.tpe")


def batch_size(spec: StudySpec) -> int:
    n = spec.search.num_configs
    b = spec.search.batch_size or max(2, n // 3)
    return max(1, min(b, n))


def batch_sizes(spec: StudySpec) -> list[int]:
    n, b = spec.search.num_configs, batch_size(spec)
    return [min(b, n - i) for i in range(0, n, b)]


# --------------------------------------------------------------------------------------------- mapping

def _is_int(x) -> bool:
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


def _scalar_choices(p: Param) -> bool:
    return all(v is None or isinstance(v, (bool, int, float, str)) for v in p.args)


def to_distribution(p: Param):
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    a = p.args
    if p.kind == "choice":
        return CategoricalDistribution(list(a) if _scalar_choices(p) else list(range(len(a))))
    if p.kind == "int":
        return IntDistribution(int(a[0]), int(a[1]))
    if p.kind == "uniform":
        return FloatDistribution(float(a[0]), float(a[1]))
    if p.kind == "loguniform":
        return FloatDistribution(float(a[0]), float(a[1]), log=True)
    if p.kind == "quniform":
        low, high, q = a
        if all(_is_int(x) for x in a):
            low, q = int(low), int(q)
            return IntDistribution(low, low + (int(high) - low) // q * q, step=q)
        hi = low + math.floor((high - low) / q + 1e-9) * q  # Optuna needs (high - low) divisible by q
        return FloatDistribution(float(low), float(round(hi, 12)), step=float(q))
    if p.kind == "qloguniform":
        low, high, q = a
        if all(_is_int(x) for x in a) and int(q) == 1:
            return IntDistribution(int(low), int(high), log=True)
        return FloatDistribution(float(low), float(high), log=True)
    raise SpecError(f"search.space.{p.name}", f"unknown distribution {p.kind!r}", "see the README")


def distributions(space: Sequence[Param]) -> dict:
    return {p.name: to_distribution(p) for p in space}


def decode(p: Param, v: Any) -> Any:
    """Optuna's value → our config value."""
    if p.kind == "choice":
        if not _scalar_choices(p):
            v = p.args[int(v)]
        return list(v) if isinstance(v, tuple) else v
    if p.kind == "qloguniform" and not isinstance(v, int):
        return _quantize(float(v), p.args[2], p.args[0], p.args[1])
    if p.kind == "quniform" and isinstance(v, float):
        return _quantize(v, p.args[2], p.args[0], p.args[1])
    return v


def encode(p: Param, v: Any) -> Any:
    """Our config value → Optuna's (inverse of decode, for telling history)."""
    if p.kind == "choice":
        vals = [list(x) if isinstance(x, tuple) else x for x in p.args]
        return vals.index(v) if not _scalar_choices(p) else v
    if p.kind in ("int",) or (p.kind in ("quniform", "qloguniform") and isinstance(to_distribution(p).low, int)):
        return int(v)
    return float(v)


# --------------------------------------------------------------------------------------------- ask / tell

# Seven parameters on purpose: the batch is a pure function of exactly these inputs (no spec or run state),
# which is what makes a TPE study reproducible and resumable.
def ask_batch(space: Sequence[Param], seed: int, direction: str, history: Sequence[tuple[dict, float | None]],
              n: int, batch_index: int, n_startup: int) -> list[dict]:
    """Ask `n` configs given the finished history [(params, value or None for failed)]. Deterministic."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from cerebro_ops.mop.epoch import derive_seed

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = distributions(space)
    by_name = {p.name: p for p in space}
    sampler = optuna.samplers.TPESampler(seed=derive_seed(seed, "tpe", batch_index), n_startup_trials=n_startup,
                                         constant_liar=True)
    study = optuna.create_study(direction="minimize" if direction == "min" else "maximize", sampler=sampler)
    for params, value in history:
        enc = {k: encode(by_name[k], params[k]) for k in dists}
        ok = value is not None and math.isfinite(value)
        study.add_trial(create_trial(params=enc, distributions=dists, value=float(value) if ok else None,
                                     state=TrialState.COMPLETE if ok else TrialState.FAIL))
    out = []
    for _ in range(n):
        trial = study.ask(dists)
        out.append({name: decode(by_name[name], trial.params[name]) for name in dists})
    return out


def first_batch(spec: StudySpec) -> list[Config]:
    n = batch_size(spec)
    params = ask_batch(spec.search.space, spec.seed, spec.train.direction, [], n, 0, n_startup=n)
    return [Config(model_id(i), p) for i, p in enumerate(params)]


def run_tpe(objective, space: Sequence[Param], num_configs: int, batch: int, seed: int,
            direction: str = "min") -> list[tuple[dict, float | None]]:
    """Pure driver for tests and notebooks: ask a batch, evaluate each config with `objective`, tell, repeat."""
    history: list[tuple[dict, float | None]] = []
    b = 0
    while len(history) < num_configs:
        n = min(batch, num_configs - len(history))
        asked = ask_batch(space, seed, direction, history, n, b, n_startup=min(batch, num_configs))
        history += [(p, objective(p)) for p in asked]
        b += 1
    return history


# --------------------------------------------------------------------------------------------- a study's batches

def told_results(state: RunState, metric: str, direction: str) -> list[tuple[dict, float | None]]:
    """What Optuna is told of the run's configs so far, in model id order: each config's best value of
    `metric` (pruned ones: of the epochs they trained), None for a failed config."""
    from cerebro_ops.core.leaderboard import best_value

    return [(r.params, None if r.status is ModelStatus.FAILED else best_value(r.history, metric, direction)[0])
            for _, r in sorted(state.models.items())]


def next_configs(spec: StudySpec, state: RunState, batch: int) -> list[Config]:
    """Batch `batch`'s configs, given the results of the batches before it; model ids continue the run's.

    A replay takes the recorded batch instead of asking (the recorded run's configs, in its order)."""
    start = len(state.models)
    planned = state.replay_of.batches if state.replay_of else None
    if planned:
        params = [state.replay_of.configs[m] for m in planned[batch]]
    else:
        history = told_results(state, spec.train.metric, spec.train.direction)
        params = ask_batch(spec.search.space, spec.seed, spec.train.direction, history, state.tpe.sizes[batch],
                           batch, n_startup=batch_sizes(spec)[0])
    return [Config(model_id(start + i), p) for i, p in enumerate(params)]


def planned_sizes(spec: StudySpec, replay_of: ReplayOf | None) -> list[int]:
    """The batch sizes of a run: the spec's, or for a replay the recorded run's."""
    if replay_of is not None and replay_of.batches:
        return [len(b) for b in replay_of.batches]
    return batch_sizes(spec)


def replay_configs(spec: StudySpec, recorded: RunState) -> list[Config]:
    """The configs a replay of `recorded` starts with: all of them, or its first TPE batch."""
    ids = recorded.tpe.batches[0] if spec.search.method == "tpe" and recorded.tpe else sorted(recorded.models)
    return [Config(m, recorded.models[m].params) for m in ids]
