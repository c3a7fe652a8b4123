"""The MOP scheduler on a simulated clock: makespan of today's hop order vs the cost-aware one.

`python -m benchmarks.simulate [--quick]` runs the pure scheduler (cerebro_ops.core.scheduler + hop_order) event by
event: W workers ask for work, a unit takes its drawn time, and when a unit ends its worker and the worker of
the model's next partition ask again (as the hop server wakes them). No TensorFlow, no Spark, no sleeping.

Unit times (no heterogeneous hop log is stored yet, so a documented model of one): each model's mean seconds
per hop is lognormal around one of three levels, 1, 5 and 20 (light / medium / heavy: batch 1024 next to
batch 32, hidden 16 next to 256), with log-sd 0.3, so the per-model means of a grid span about 10-30x (and
more in the tails); each hop then gets lognormal noise with log-sd 0.1. Times are drawn per (model, epoch,
partition) from a seeded stream, so every policy is measured on the very same units.

Epoch 1 has no costs yet (every policy is today's rule there); epochs 2.. use the median train time of each
model's hops of the previous epoch. Reported per epoch >= 2: makespan / LB, LB = max(total work / W, the
longest model's total work) -- no schedule can beat it. Writes benchmarks/results/simulate.json.
"""
from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

from cerebro_ops.core.hop_order import HopOrder, LeastAdvancedFirst, LongestRemainingWorkFirst, unit_costs
from cerebro_ops.core.scheduler import TRAIN, MopScheduler

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (1.0, 5.0, 20.0)   # seconds per hop of a light, medium and heavy model
MODEL_SIGMA = 0.3           # log-sd of a model's mean around its level
HOP_SIGMA = 0.1             # log-sd of one hop around its model's mean


def model_means(model_ids: list[str], seed: int) -> dict[str, float]:
    rng = random.Random(f"{seed}:model-means")
    return {m: rng.choice(LEVELS) * math.exp(rng.gauss(0.0, MODEL_SIGMA)) for m in model_ids}


def hop_time(means: dict[str, float], seed: int, epoch: int, model_id: str, partition: int) -> float:
    rng = random.Random(f"{seed}:{epoch}:{model_id}:{partition}")
    return means[model_id] * math.exp(rng.gauss(0.0, HOP_SIGMA))


def run_epoch(model_ids: list[str], workers: int, epoch: int, seed: int, order: HopOrder | None,
              unit_time: Callable[[str, int], float], check: bool = False) -> dict:
    """One epoch on the simulated clock; returns makespan, LB and the train records (worker, start, end).

    With `check`, asserts MOP's invariants at every event (slow at large W): a model on one worker at a
    time, a worker runs one unit, no worker idles while a unit is runnable on it."""
    sched = MopScheduler(model_ids, workers, epoch, seed, order=order)
    now = 0.0
    events: list[tuple[float, int]] = []   # (end time, worker)
    running: dict[int, object] = {}
    records: list[dict] = []
    started: dict[int, float] = {}

    def ask(w: int) -> None:
        if w in running:
            return
        u = sched.assign(w)
        if u is None:
            if check:
                assert not sched.runnable_for(w)
            return
        if check:
            assert u.partition == w and u.model_id not in {x.model_id for x in running.values()}
        running[w] = u
        started[w] = now
        heapq.heappush(events, (now + unit_time(u.model_id, u.partition), w))

    for w in range(workers):
        ask(w)
    while events:
        now, w = heapq.heappop(events)
        u = running.pop(w)
        sched.complete(w, u)
        records.append({"model_id": u.model_id, "kind": TRAIN, "partition": u.partition, "hop": u.hop,
                        "worker": w, "start": started[w], "end": now, "train_s": now - started[w], "status": "ok"})
        # Who can have new work: this worker, and the worker of the model's next partition. Every other
        # idle worker found nothing runnable before, and nothing changed for it.
        ask(w)
        model = sched.models[u.model_id]
        if model.trained < workers:
            ask(model.order[model.trained])
        if check:
            for v in range(workers):
                assert v in running or not sched.runnable_for(v), f"worker {v} idles with work runnable"
    assert sched.finished(), "the simulated epoch stopped before every unit ran"
    work: dict[str, float] = {}
    for r in records:
        work[r["model_id"]] = work.get(r["model_id"], 0.0) + r["train_s"]
    load = [0.0] * workers
    for r in records:
        load[r["worker"]] += r["train_s"]
    lb = max(sum(work.values()) / workers, max(work.values()))
    lb_tight = max(lb, max(load))  # a worker runs every unit of its partition: its load is a bound too
    makespan = max(r["end"] for r in records)
    return {"makespan": makespan, "lb": lb, "ratio": makespan / lb, "lb_tight": lb_tight,
            "ratio_tight": makespan / lb_tight, "records": records}


def _summary(res: dict) -> dict:
    return {k: res[k] for k in ("makespan", "lb", "ratio", "lb_tight", "ratio_tight")}


POLICIES: dict[str, Callable[[dict], HopOrder]] = {
    "today": lambda costs: LeastAdvancedFirst(),
    "lrw": lambda costs: LongestRemainingWorkFirst(costs, spread=False),
    "lrw_spread": lambda costs: LongestRemainingWorkFirst(costs, spread=True),
}


def run_case(workers: int, n_models: int, epochs: int, seed: int, policies=POLICIES) -> dict:
    models = [f"m{i:04d}" for i in range(n_models)]
    means = model_means(models, seed)
    out = {"workers": workers, "models": n_models, "epochs": epochs, "seed": seed,
           "mean_spread": max(means.values()) / min(means.values()), "policies": {}}
    def epoch(e: int, order: HopOrder) -> dict:
        return run_epoch(models, workers, e, seed, order, lambda m, p: hop_time(means, seed, e, m, p))

    first = epoch(1, LeastAdvancedFirst())  # no costs yet: the same epoch for every policy
    for name, make in policies.items():
        prev = first["records"]
        per_epoch = [{"epoch": 1, "policy": LeastAdvancedFirst.name, **_summary(first)}]
        for e in range(2, epochs + 1):
            order = make(unit_costs(prev))
            res = epoch(e, order)
            per_epoch.append({"epoch": e, "policy": order.name, **_summary(res)})
            prev = res["records"]
        learned = [x for x in per_epoch if x["epoch"] >= 2]
        out["policies"][name] = {"per_epoch": per_epoch,
                                 "ratio_mean": statistics.mean(x["ratio"] for x in learned),
                                 "ratio_max": max(x["ratio"] for x in learned),
                                 "ratio_tight_mean": statistics.mean(x["ratio_tight"] for x in learned)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.simulate")
    ap.add_argument("--quick", action="store_true", help="W = 8, 16 only")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args(argv)
    ws = [8, 16] if args.quick else [8, 16, 64, 256]
    cases = []
    t0 = time.time()
    print("makespan / LB (makespan / LB with the busiest worker's load as a bound too), epochs >= 2")
    print(f"{'W':>4} {'M':>5} {'seed':>4} {'spread':>6}  " + "  ".join(f"{p:>13}" for p in POLICIES), flush=True)
    for w in ws:
        # W = 256: one seed, M = 2W, one learned epoch (the scheduler scans every model per request, and
        # 131k units take minutes per epoch on this machine)
        for m in (2 * w, 4 * w) if w < 256 else (2 * w,):
            for s in range(args.seeds if w < 256 else 1):
                c = run_case(w, m, args.epochs if w < 256 else 2, s)
                cases.append(c)
                print(f"{w:>4} {m:>5} {s:>4} {c['mean_spread']:>5.0f}x  " + "  ".join(
                    f"{c['policies'][p]['ratio_mean']:>5.3f} ({c['policies'][p]['ratio_tight_mean']:.3f})"
                    for p in POLICIES), flush=True)
    out = {"about": "makespan / LB per epoch >= 2 (costs learned from the epoch before); see the module doc",
           "levels": LEVELS, "model_sigma": MODEL_SIGMA, "hop_sigma": HOP_SIGMA, "wall_s": time.time() - t0,
           "cases": cases}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "simulate.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
