"""The MOP scheduler: which model trains on which worker, and when. Pure and deterministic.

Rules (one epoch):
- worker w owns partition w; the data never moves, models do;
- every live model trains one sub-epoch on every partition exactly once, in a visit order fixed before the epoch
  (by the seed; a cost-aware hop order also by recorded costs); its last hop also evaluates it: on the
  validation split every worker holds, or, with an evaluation chain, on its partition's validation rows,
  followed by W - 1 eval units that add the other partitions' (each worker holds only its own);
- a model is on at most one worker at a time; a worker runs at most one unit at a time;
- a worker that asks for work gets a runnable unit whenever one exists (no idling, no sleep-polling).

Because each model's visit order is fixed in advance, the data each model sees, and so its weights, do
not depend on timing within the epoch: two runs with the same seed (and, for a cost-aware order, the same
recorded costs) train the same models the same way, and a resumed epoch continues exactly where it stopped.
The scheduler never touches training code.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable

TRAIN = "train"
# With an evaluation chain (partitioned validation) a model's last train hop evaluates it on its partition's
# validation rows and W - 1 eval units, in the model's visit order, add the other partitions' validation rows
# (hops W .. 2W - 2); without it, eval is a unit kind of older runs' hop records only.
EVAL = "eval"


@dataclass(frozen=True, order=True)
class Unit:
    model_id: str
    partition: int
    kind: str = TRAIN
    hop: int = 0  # position in the model's visit order

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.model_id, self.partition, self.kind)


def visit_orders(model_ids: Iterable[str], workers: int, epoch: int, seed: int) -> dict[str, list[int]]:
    """Each model's partition order for one epoch: rotations of one seeded permutation.

    Model i (in a seeded shuffle) starts at π[i mod W], so at every step the models spread evenly over the
    partitions and no partition becomes a queue.
    """
    ids = sorted(model_ids)
    rng = random.Random(f"{seed}:{epoch}:visit-order")
    rng.shuffle(ids)
    perm = list(range(workers))
    rng.shuffle(perm)
    return {m: [perm[(i + k) % workers] for k in range(workers)] for i, m in enumerate(ids)}


@dataclass
class _ModelState:
    order: list[int]
    trained: int = 0           # hops done
    evaluated: int = 0         # eval units done (evaluation chain)
    busy_on: int | None = None
    failed: bool = False
    attempts: dict[tuple, int] = field(default_factory=dict)


class MopScheduler:
    """Hands out (model, partition) units of one epoch. Not thread-safe: the caller holds a lock."""

    # shape: the epoch (models, workers, number, seed), then resume state and policies, all defaulted.
    def __init__(self, model_ids: Iterable[str], workers: int, epoch: int, seed: int,
                 done: Iterable[Unit] = (), max_retries: int = 2, order=None):
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers = workers
        self.epoch = epoch
        self.max_retries = max_retries
        self.evals = 0  # eval units per model after its train hops (chain_evaluations)
        # `order`: a hop_order.HopOrder (visit orders + the pick among runnable units); None = the rule below
        self.order = order
        orders = (order.visit_orders if order else visit_orders)(model_ids, workers, epoch, seed)
        self.models = {m: _ModelState(o) for m, o in orders.items()}
        self.running: dict[int, Unit] = {}
        for u in sorted(done, key=lambda u: (u.kind != TRAIN, u.hop)):
            self._mark_done(u)

    # ------------------------------------------------------------------ queries
    def remaining_for(self, worker: int) -> list[Unit]:
        """For each live model, the next unit it still needs on this worker (runnable now or later). Empty
        once the worker has nothing left to do."""
        out = []
        for m, model in self.models.items():
            if model.failed:
                continue
            if model.trained < self.workers and worker in model.order[model.trained:]:
                out.append(Unit(m, worker, TRAIN, model.order.index(worker)))
            elif worker in model.order[model.evaluated:self.evals]:  # after its train hops, which may be left
                out.append(Unit(m, worker, EVAL, self.workers + model.order.index(worker)))
        return out

    def runnable_for(self, worker: int) -> list[Unit]:
        """Units this worker could start right now, best first."""
        if worker in self.running:
            return []
        train, evals = [], []
        for m, model in self.models.items():
            if model.failed or model.busy_on is not None:
                continue
            if model.trained < self.workers and model.order[model.trained] == worker:
                train.append((model.trained, m))
            elif model.trained == self.workers and model.evaluated < self.evals \
                    and model.order[model.evaluated] == worker:
                evals.append(Unit(m, worker, EVAL, self.workers + model.evaluated))
        # the least advanced model first keeps all models moving (or the hop order's pick); ties by id
        first = self.order.priority if self.order else (lambda m, done, workers: (done, m))
        # evaluations first: they are short and finish their models
        return sorted(evals) + [Unit(m, worker, TRAIN, k)
                                for k, m in sorted(train, key=lambda t: first(t[1], t[0], self.workers))]

    def finished(self) -> bool:
        return not self.running and all(not self.remaining_for(w) for w in range(self.workers))

    def worker_done(self, worker: int) -> bool:
        return worker not in self.running and not self.remaining_for(worker)

    def failed_models(self) -> list[str]:
        return sorted(m for m, model in self.models.items() if model.failed)

    def live_models(self) -> list[str]:
        return sorted(m for m, model in self.models.items() if not model.failed)

    # ------------------------------------------------------------------ transitions
    def assign(self, worker: int) -> Unit | None:
        """Start the best runnable unit on this worker, or None if nothing can run now."""
        units = self.runnable_for(worker)
        if not units:
            return None
        u = units[0]
        self.running[worker] = u
        self.models[u.model_id].busy_on = worker
        return u

    def complete(self, worker: int, unit: Unit) -> None:
        self._check_running(worker, unit)
        del self.running[worker]
        self.models[unit.model_id].busy_on = None
        self._mark_done(unit)

    def release(self, worker: int, unit: Unit) -> bool:
        """The worker died or the hop failed transiently: the unit runs again later (on the same
        partition's worker). Returns False, and fails the model, once retries are exhausted."""
        self._check_running(worker, unit)
        del self.running[worker]
        model = self.models[unit.model_id]
        model.busy_on = None
        model.attempts[unit.key] = model.attempts.get(unit.key, 0) + 1
        if model.attempts[unit.key] > self.max_retries:
            model.failed = True
            return False
        return True

    def fail_model(self, worker: int | None, unit: Unit | None, model_id: str) -> None:
        """The config itself is broken (builder error, NaN loss, OOM): it stops hopping. The epoch driver
        also uses this to pause a model whose checkpoint it rolls back, until it is repaired."""
        if worker is not None and unit is not None and self.running.get(worker) == unit:
            del self.running[worker]
        model = self.models[model_id]
        model.busy_on = None
        model.failed = True

    def drop_model(self, model_id: str) -> None:
        """Remove a model that is not running: one of the epoch's model set left out of this pass (a
        repair pass covers one model, with the visit orders of the whole set)."""
        model = self.models[model_id]
        if model.busy_on is not None:
            raise RuntimeError(f"{model_id} is running on worker {model.busy_on}")
        model.failed = True

    def chain_evaluations(self, done: Iterable[Unit] = ()) -> None:
        """Turn on the evaluation chain (W - 1 eval units per model after its train hops); `done`: the eval
        units already finished (a resumed epoch)."""
        self.evals = self.workers - 1
        for u in sorted(done, key=lambda u: u.hop):
            if u.kind == EVAL:
                self._mark_done(u)

    def skip_evals(self, model_id: str) -> None:
        """An older run's model whose last train hop evaluated it on the whole validation split."""
        if model_id in self.models:
            self.models[model_id].evaluated = self.evals

    def _mark_done(self, u: Unit) -> None:
        model = self.models.get(u.model_id)
        if model is None:
            return
        if u.kind != TRAIN:
            k = u.hop - self.workers
            if model.trained == self.workers and k == model.evaluated < self.evals and model.order[k] == u.partition:
                model.evaluated += 1
            return  # else an older run's eval unit: nothing left to schedule for it
        if u.hop != model.trained or model.order[u.hop] != u.partition:
            raise ValueError(f"out-of-order hop {u} for {u.model_id} (expected hop {model.trained} "
                             f"on partition {model.order[model.trained] if model.trained < self.workers else '-'})")
        model.trained += 1

    def _check_running(self, worker: int, unit: Unit) -> None:
        if self.running.get(worker) != unit:
            raise ValueError(f"worker {worker} is not running {unit}")
