"""Pruning inside MOP: time to reach the same best val metric with and without pruning.

`python -m benchmarks.pruning [--rows N] [--configs N] [--epochs N] [--method asha]`

Runs one random-search study on the flights data twice in one invocation, on the same prepared data and
seed: without pruning and with the chosen pruner. For each run it records, per epoch, the wall time at
which the epoch ended (from the hop log) and the best val loss so far; "time to best" is the first moment
a run's best-so-far val loss is within `--tolerance` of the unpruned run's final best.
Writes benchmarks/results/pruning.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from .common import FLIGHTS_DATA, MLP, RESULTS, machine
from .common import env as _env


def write_spec(work: Path, source: Path, configs: int, epochs: int, pruning: dict, name: str) -> Path:
    spec = {"name": name, "seed": 0, "data": {"source": str(source), **FLIGHTS_DATA},
            "model": {"builder": MLP},
            "search": {"method": "random", "num_configs": configs,
                       "space": {"hidden_units": {"choice": [16, 32, 64, 128]},
                                 "num_layers": {"int": [1, 3]},
                                 "learning_rate": {"loguniform": [1e-4, 3e-2]},
                                 "batch_size": {"choice": [128, 256, 512, 1024]}}},
            "train": {"epochs": epochs, "workers": 2, "metric": "val_loss", "direction": "min"},
            "pruning": pruning,
            "runtime": {"store": (work / "store").as_uri(), "tracking_uri": f"sqlite:///{work / 'mlflow.db'}"}}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_study(spec_path: Path) -> dict:
    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec

    spec = load_spec(str(spec_path))
    t0 = time.time()
    res = study.run(spec, register_model=False)
    wall = time.time() - t0
    state = study.load_state(spec, res["run_id"])
    records = [r for r in study.hop_records(spec, res["run_id"]) if r.get("status") == "ok"]
    first = min(r["start"] for r in records)
    epoch_end = {e: max(r["end"] for r in records if r["epoch"] == e) - first
                 for e in sorted({r["epoch"] for r in records})}
    best_so_far, curve = float("inf"), []
    for e, t in epoch_end.items():
        vals = [h["val_loss"] for hist in state["history"].values() for h in hist
                if h["epoch"] == e and h.get("val_loss") is not None]
        best_so_far = min([best_so_far, *vals])
        curve.append({"epoch": e, "t": round(t, 2), "best_val_loss": best_so_far, "live": len(vals)})
    statuses = list(state["status"].values())
    return {"study_wall_s": round(wall, 2), "epochs_wall_s": round(max(epoch_end.values()), 2),
            "train_hops": sum(1 for r in records if r["kind"] == "train"), "curve": curve,
            "final_best": best_so_far, "pruned": statuses.count("PRUNED"), "finished": statuses.count("FINISHED")}


def time_to(curve: list[dict], target: float) -> float | None:
    return next((c["t"] for c in curve if c["best_val_loss"] <= target), None)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--configs", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--method", default="asha", choices=["asha", "median", "hyperband"])
    ap.add_argument("--reduction-factor", type=int, default=2)
    ap.add_argument("--tolerance", type=float, default=0.002)
    args = ap.parse_args(argv)
    _env()
    import tempfile

    from cerebro_ops.example_data import make_example_data

    work = Path(tempfile.mkdtemp(prefix="cerebro-bench-pruning-"))
    source = make_example_data("flights", work / "data", rows=args.rows)
    runs = {}
    for label, pruning in (("none", {"method": "none"}),
                           (args.method, {"method": args.method, "min_epochs": 1,
                                          "reduction_factor": args.reduction_factor})):
        print(f"[pruning] {label} ...", flush=True)
        runs[label] = run_study(write_spec(work, source, args.configs, args.epochs, pruning, f"prune_{label}"))
    target = runs["none"]["final_best"] + args.tolerance
    for r in runs.values():
        r["time_to_target_s"] = time_to(r["curve"], target)
    base, pr = runs["none"], runs[args.method]
    out = {"machine": machine(), "rows": args.rows, "configs": args.configs, "epochs": args.epochs,
           "method": args.method, "reduction_factor": args.reduction_factor, "tolerance": args.tolerance,
           "target_val_loss": target, "runs": runs,
           "speedup_epochs_wall": round(base["epochs_wall_s"] / pr["epochs_wall_s"], 2),
           "speedup_time_to_target": (round(base["time_to_target_s"] / pr["time_to_target_s"], 2)
                                      if pr["time_to_target_s"] else None)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pruning.json").write_text(json.dumps(out, indent=1, default=str))
    print(f"\n| run | train hops | epochs wall s | time to best±{args.tolerance} s | final best val loss | pruned |")
    print("|---|---|---|---|---|---|")
    for label, r in runs.items():
        print(f"| {label} | {r['train_hops']} | {r['epochs_wall_s']} | {r['time_to_target_s']} | "
              f"{r['final_best']:.4f} | {r['pruned']} |")
    print(f"\nspeed-up of the epochs: {out['speedup_epochs_wall']}×; to the target: {out['speedup_time_to_target']}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
