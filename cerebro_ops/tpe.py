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

Where it runs:
- CLI / Python API (``study.run``): the first batch trains in the plan's epoch steps; before ``select``,
  :func:`run_remaining_batches` tells the results and asks/trains the remaining batches, each with its own
  epoch counter (``state["epochs_done"]`` restarts at 0 per batch; models of finished batches are FINISHED).
- Airflow: the DAG's shape (one task per epoch) is fixed when the DAG is parsed, so an Airflow run trains the
  *first batch only* (``batch_size`` configs) and ``select`` ranks those; ``state["tpe"]`` is absent there.
  Use the CLI (or a larger ``batch_size``) when the later TPE batches matter.

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

from .errors import SpecError
from .search import Config, _quantize, model_id
from .spec import Param, StudySpec

log = logging.getLogger("cerebro_ops.tpe")


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

def ask_batch(space: Sequence[Param], seed: int, direction: str, history: Sequence[tuple[dict, float | None]],
              n: int, batch_index: int, n_startup: int) -> list[dict]:
    """Ask `n` configs given the finished history [(params, value or None for failed)]. Deterministic."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from .epoch import derive_seed

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


# --------------------------------------------------------------------------------------------- study driver

def _result(state: dict, m: str, metric: str, direction: str) -> float | None:
    from .leaderboard import best_value

    if state["status"].get(m) == "FAILED":
        return None
    return best_value(state["history"].get(m, []), metric, direction)[0]


def _next_params(spec: StudySpec, state: dict, b: int, n: int) -> list[dict]:
    replay = state.get("replay_of") or {}
    planned = replay.get("batches")
    if planned:  # replay: the recorded batch, not a new ask
        return [replay["configs"][m] for m in planned[b]]
    history = [(state["configs"][m], _result(state, m, spec.train.metric, spec.train.direction))
               for m in sorted(state["configs"])]
    return ask_batch(spec.search.space, spec.seed, spec.train.direction, history, n, b,
                     n_startup=batch_sizes(spec)[0])


def run_remaining_batches(spec: StudySpec, run_id: str, spark=None, launcher=None, progress=None) -> dict:
    """CLI/Python path: tell the finished batch, ask and train the next, until num_configs are trained."""
    from . import study

    state = study.load_state(spec, run_id)
    eff = study.effective_spec(spec, state)
    if eff.search.method != "tpe":
        return state
    sizes = batch_sizes(eff)
    planned = (state.get("replay_of") or {}).get("batches")
    if planned:
        sizes = [len(b) for b in planned]
    if "tpe" not in state:
        state["tpe"] = {"batches": [sorted(state["configs"])], "sizes": sizes}
        study._save_state(spec, run_id, state)
    while True:
        state = study.load_state(spec, run_id)
        batches = state["tpe"]["batches"]
        if state["epochs_done"] < state["epochs"]:  # the current batch is unfinished (resume)
            for e in range(state["epochs_done"] + 1, state["epochs"] + 1):
                if progress:
                    progress.start_epoch(e)
                study.run_epoch(spec, run_id, e, spark=spark, launcher=launcher,
                                on_record=progress.record if progress else None)
            continue
        if len(batches) >= len(sizes):
            return state
        b = len(batches)
        params = _next_params(eff, state, b, sizes[b])
        _start_batch(eff, spec, run_id, state, params)
        log.info("tpe batch %d/%d: %s", b + 1, len(sizes), ", ".join(state["tpe"]["batches"][-1]))


def _start_batch(eff: StudySpec, spec: StudySpec, run_id: str, state: dict, params: list[dict]) -> None:
    """Finish the models of the previous batch and add the new batch's configs with a fresh epoch counter."""
    from . import study

    tracker = study._tracker(eff)
    children = state["mlflow"].setdefault("children", {}) or {}
    for m, s in state["status"].items():
        if s == "RUNNING":
            state["status"][m] = "FINISHED"
            tracker.end_config(children.get(m), "FINISHED", {"cerebro.status": "FINISHED"})
    start = len(state["configs"])
    ids = []
    for i, p in enumerate(params):
        m = model_id(start + i)
        ids.append(m)
        state["configs"][m] = p
        state["status"][m] = "RUNNING"
        state["ckpt"][m] = None
        state["history"][m] = []
        parent = state["mlflow"].get("parent")
        if parent:
            children[m] = tracker.start_config(parent, m, p)
    state["mlflow"]["children"] = children
    state["tpe"]["batches"].append(ids)
    state["epochs_done"] = 0
    study._save_state(spec, run_id, state)


def replay_configs(spec: StudySpec, recorded: dict) -> list[Config]:
    """The configs a replay of `recorded` (a run's state.json) starts with: all of them, or the first TPE batch."""
    batches = (recorded.get("tpe") or {}).get("batches")
    ids = batches[0] if spec.search.method == "tpe" and batches else sorted(recorded["configs"])
    return [Config(m, recorded["configs"][m]) for m in ids]
