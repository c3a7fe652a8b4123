"""Hop orders on a real heterogeneous grid: `python -m benchmarks.hetero [--rows N] [--epochs E] [--workers W]`.

The same grid (batch 32 next to 1024, hidden 16 next to 256) runs twice through the study code path
(study.run on local[W] Spark, as benchmarks/run.py), once with `train.hop_order: fixed` (today's order) and
once with `cost_aware`, one after the other in one invocation. Per epoch: makespan (first hop start to last
hop end) and LB = max(total hop wall / W, the longest model's total hop wall); epoch 1 is the same rule in
both (no costs yet). Writes benchmarks/results/hetero.json. Default size is a smoke run; run it bigger on an
idle machine (timings on a loaded machine say little).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from .common import FLIGHTS_DATA, MLP, RESULTS, machine, write_spec
from .common import env as _env

GRID = {"hidden_units": [16, 256], "learning_rate": [0.001], "batch_size": [32, 1024]}


def epoch_stats(records: list[dict], workers: int) -> list[dict]:
    out = []
    for e in sorted({r["epoch"] for r in records}):
        recs = [r for r in records if r["epoch"] == e and r["kind"] == "train" and r.get("status") == "ok"]
        per_model: dict[str, float] = {}
        for r in recs:
            per_model[r["model_id"]] = per_model.get(r["model_id"], 0.0) + (r["end"] - r["start"])
        makespan = max(r["end"] for r in recs) - min(r["start"] for r in recs)
        lb = max(sum(per_model.values()) / workers, max(per_model.values()))
        out.append({"epoch": e, "makespan_s": makespan, "lb_s": lb, "ratio": makespan / lb,
                    "unit_s": {m: t / workers for m, t in sorted(per_model.items())}})
    return out


def run_order(order: str, work: Path, source: Path, rows: int, epochs: int, workers: int) -> dict:
    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec

    wl = {"builder": MLP, "data": FLIGHTS_DATA, "epochs": epochs, "workers": workers, "space": GRID}
    (work / order).mkdir(parents=True, exist_ok=True)
    path = write_spec(f"hetero_{order}", wl, work / order, source)
    raw = yaml.safe_load(path.read_text())
    raw["train"]["hop_order"] = order
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    spec = load_spec(str(path))
    t0 = time.time()
    res = study.run(spec, register_model=False)
    wall = time.time() - t0
    records = study.hop_records(spec, res["run_id"])
    stats = epoch_stats(records, workers)
    learned = [s for s in stats if s["epoch"] >= 2]
    return {"order": order, "run_id": res["run_id"], "study_wall_s": wall, "per_epoch": stats,
            "makespan_learned_s": sum(s["makespan_s"] for s in learned),
            "lb_learned_s": sum(s["lb_s"] for s in learned),
            "ratio_learned": sum(s["makespan_s"] for s in learned) / sum(s["lb_s"] for s in learned)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.hetero")
    ap.add_argument("--rows", type=int, default=6000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (epoch 1 measures the costs)")
    _env()
    from cerebro_ops.example_data import make_example_data

    work = Path(tempfile.mkdtemp(prefix="cerebro-hetero-"))
    info = machine()
    try:
        source = make_example_data("flights", work / "data", rows=args.rows)
        runs = {o: run_order(o, work, source, args.rows, args.epochs, args.workers) for o in ("fixed", "cost_aware")}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = {"grid": GRID, "rows": args.rows, "epochs": args.epochs, "workers": args.workers,
           "machine": {**info, "loadavg_end": __import__("os").getloadavg()}, "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hetero.json").write_text(json.dumps(out, indent=1))
    print(f"{'order':>11} {'epoch':>5} {'makespan':>9} {'LB':>8} {'ratio':>6}")
    for o, r in runs.items():
        for s in r["per_epoch"]:
            print(f"{o:>11} {s['epoch']:>5} {s['makespan_s']:>8.1f}s {s['lb_s']:>7.1f}s {s['ratio']:>6.3f}")
        print(f"{o:>11} {'2..':>5} {r['makespan_learned_s']:>8.1f}s {r['lb_learned_s']:>7.1f}s "
              f"{r['ratio_learned']:>6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
