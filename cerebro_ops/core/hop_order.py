"""Hop orders: which runnable unit a worker takes first, and each model's partition visit order. Pure.

A hop order is a small strategy object behind one interface (`HopOrder`), given to `MopScheduler(order=...)`:
- `visit_orders(model_ids, workers, epoch, seed)`: each model's partition order for the epoch;
- `priority(model_id, hops_done, workers)`: sort key among the units runnable on a worker (smallest first).

`LeastAdvancedFirst` is the scheduler's own rule (seeded rotations; the least advanced model first).
`LongestRemainingWorkFirst` uses each model's unit time learned from earlier epochs' hop records: the model
with the most work left goes first, and the visit orders give the heavy models different starting partitions
(see `spread_rotations`). A model's weights depend only on its visit order and seeds, never on which runnable
unit a worker picked, so the runtime pick keeps runs reproducible; the cost-aware visit orders are a function
of (seed, epoch, cost table), and the cost table is stored with the epoch (`EpochOrder`) so that a resumed or
replayed epoch uses the very same orders.
"""
from __future__ import annotations

import random
import statistics
import zlib
from dataclasses import dataclass
from typing import ClassVar, Iterable, Mapping

from cerebro_ops.core.scheduler import TRAIN, visit_orders
from cerebro_ops.core.spec import HOP_ORDERS

COST_AWARE, FIXED = HOP_ORDERS


class HopOrder:
    """The interface; subclasses override what they change."""
    name = "base"

    def visit_orders(self, model_ids: Iterable[str], workers: int, epoch: int, seed: int) -> dict[str, list[int]]:
        return visit_orders(model_ids, workers, epoch, seed)

    def priority(self, model_id: str, hops_done: int, workers: int) -> tuple:
        return (hops_done, model_id)

    def describe(self) -> dict:
        return {"policy": self.name}


class LeastAdvancedFirst(HopOrder):
    """Seeded rotations of one permutation; the model with the fewest hops done first, ties by id."""
    name = "least_advanced_first"


@dataclass
class LongestRemainingWorkFirst(HopOrder):
    """The model with the most remaining work (unit time × hops left) first, ties by id; with `spread`, the
    visit orders start heavy models on different partitions.

    `costs` maps model id -> seconds per hop; a model missing from it counts as the median known model."""
    costs: Mapping[str, float]
    spread: bool = True
    name: ClassVar[str] = "longest_remaining_work_first"

    def __post_init__(self):
        self._unknown = float(statistics.median(self.costs.values())) if self.costs else 1.0

    def cost(self, model_id: str) -> float:
        c = self.costs.get(model_id)
        return self._unknown if c is None else float(c)

    def visit_orders(self, model_ids: Iterable[str], workers: int, epoch: int, seed: int) -> dict[str, list[int]]:
        if not self.spread:
            return visit_orders(model_ids, workers, epoch, seed)
        ids = sorted(model_ids)
        return spread_rotations(ids, {m: self.cost(m) for m in ids}, workers, epoch, seed)

    def priority(self, model_id: str, hops_done: int, workers: int) -> tuple:
        return (-self.cost(model_id) * (workers - hops_done), model_id)

    def describe(self) -> dict:
        return {"policy": self.name, "spread": self.spread, "costs": dict(sorted(self.costs.items()))}


def spread_rotations(ids: list[str], costs: Mapping[str, float], workers: int, epoch: int,
                     seed: int) -> dict[str, list[int]]:
    """Rotations of one seeded permutation (as `visit_orders`), with the starting offsets dealt by cost.

    The models, heaviest first, take offsets 0, 1, ..., W-1, then W-1, ..., 0, and so on (a snake draft), so
    the W heaviest start on W different partitions and every offset carries about the same work. Model at
    offset i walks the path of offset i+1 one step later; dealing heavier models to lower offsets makes each
    follower no faster than the model it follows, so the heavy models do not catch up with each other.
    At every step the models still spread evenly over the partitions (at most one more model on any)."""
    rng = random.Random(f"{seed}:{epoch}:visit-order")
    perm = list(range(workers))
    rng.shuffle(perm)
    shuffled = list(ids)
    random.Random(f"{seed}:{epoch}:cost-ties").shuffle(shuffled)  # equal costs: a seeded order, not the id
    by_cost = sorted(shuffled, key=lambda m: -costs[m])  # stable: ties keep the seeded order
    orders = {}
    for rank, m in enumerate(by_cost):
        rnd, pos = divmod(rank, workers)
        offset = pos if rnd % 2 == 0 else workers - 1 - pos
        orders[m] = [perm[(offset + k) % workers] for k in range(workers)]
    return orders


# ------------------------------------------------------------------------------------------ costs from records
def unit_costs(records: Iterable[dict]) -> dict[str, float]:
    """Seconds per train hop of each model: the median train_s (else end - start) of its finished train hops."""
    times: dict[str, list[float]] = {}
    for r in records:
        if r.get("kind") != TRAIN or r.get("status", "ok") != "ok":
            continue
        t = r.get("train_s")
        if t is None and "start" in r and "end" in r:
            t = r["end"] - r["start"]
        if t is not None and t >= 0:
            times.setdefault(r["model_id"], []).append(float(t))
    return {m: statistics.median(ts) for m, ts in sorted(times.items())}


def make_order(policy: str, costs: Mapping[str, float], model_ids: Iterable[str]) -> HopOrder:
    """The hop order for a spec's `train.hop_order` and the known unit costs of this epoch's models.

    `cost_aware` with no known cost for any of the models (epoch 1, a new TPE batch) is today's rule."""
    if policy not in HOP_ORDERS:
        raise ValueError(f"unknown hop order {policy!r}; use one of {', '.join(HOP_ORDERS)}")
    ids = set(model_ids)
    known = {m: c for m, c in costs.items() if m in ids}
    if policy == FIXED or not known or max(known.values()) <= 0:  # no times measured: nothing to go by
        return LeastAdvancedFirst()
    return LongestRemainingWorkFirst(known)


def order_from_description(desc: Mapping) -> HopOrder:
    """The hop order an epoch recorded (`HopOrder.describe()`), rebuilt for a resume or a repair pass."""
    if desc.get("policy") == LongestRemainingWorkFirst.name:
        return LongestRemainingWorkFirst(dict(desc["costs"]), spread=bool(desc.get("spread", True)))
    if desc.get("policy") in (LeastAdvancedFirst.name, None):
        return LeastAdvancedFirst()
    raise ValueError(f"unknown recorded hop order {desc.get('policy')!r}")


class EpochOrder:
    """The hop order of one epoch of one model set in the run's store (`hops/order-e{epoch}-{set}.json`; a
    TPE batch is its own model set): chosen by the epoch's first pass from the previous epoch's hop records,
    read back by a resumed or repair pass, so the orders never change within an epoch, and by a replay from
    the recorded run, so the replay trains with the recorded orders. `store` needs write_json(name,
    obj), read_json(name) and exists(name)."""

    def __init__(self, store, epoch: int, model_set: Iterable[str]):
        self.store, self.epoch, self.models = store, epoch, sorted(model_set)
        digest = zlib.crc32(",".join(self.models).encode()) & 0xFFFFFFFF
        self.name = f"hops/order-e{epoch}-{digest:08x}.json"

    def get(self, policy: str, previous_records: Iterable[dict], started: bool = False,
            replay_of=None) -> HopOrder:
        """`started`: this epoch already has finished units; `replay_of`: (store, started there) of the run a
        replay re-runs. An epoch started before hop orders were recorded ran with today's rule."""
        desc = _read(self.store, self.name)
        if desc is None and replay_of is not None:
            recorded_store, recorded_started = replay_of
            desc = _read(recorded_store, self.name)
            if desc is None and recorded_started:
                desc = LeastAdvancedFirst().describe()
        if desc is None and started:
            desc = LeastAdvancedFirst().describe()
        order = order_from_description(desc) if desc else make_order(policy, unit_costs(previous_records),
                                                                     self.models)
        self.store.write_json(self.name, {"epoch": self.epoch, "requested": policy, "models": self.models,
                                          **order.describe()})
        return order


def _read(store, name: str) -> dict | None:
    return store.read_json(name) if store.exists(name) else None
