"""Real-data corpus: each table's study (more epochs and configs than the tests) against scikit-learn
baselines on the very split the study used, and on a random stratified split of the raw table.

    python -m benchmarks.realdata [--epochs 12] [--only rd_survey,rd_prices] [--out benchmarks/results/realdata.json]

The corpus is tests/realdata/corpus.py (seeded, offline). Per table: the study through the CLI code path
(`study.run`, grid search, W=2, seed 0), its best validation metric (the one the spec ranks by), the
baselines (constant, linear, histogram gradient boosting; tests/realdata/baselines.py) and the wall time.
Writes JSON and prints one table. For reporting numbers, not run in CI.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUT = HERE / "results" / "realdata.json"
# 4 configs: width and learning rate (the regression label is in the thousands and is not standardised,
# so the learning rate decides how far a run gets towards it).
SPACE = {"hidden_units": [32, 128], "learning_rate": [0.003, 0.01], "batch_size": [32]}
EPOCHS = 12


def _env() -> None:
    for k, v in (("SPARK_LOCAL_IP", "127.0.0.1"), ("PYSPARK_PYTHON", sys.executable),
                 ("PYSPARK_DRIVER_PYTHON", sys.executable), ("TF_CPP_MIN_LOG_LEVEL", "2")):
        os.environ.setdefault(k, v)
    pp = os.environ.get("PYTHONPATH", "")
    if str(ROOT) not in pp.split(os.pathsep):
        os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + pp if pp else "")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def bench_table(table, work: Path, spark, epochs: int, space: dict) -> dict:
    from tests.realdata import baselines as B
    from tests.realdata.harness import run_table_study

    run = run_table_study(table, work, spark, epochs=epochs, space=space)
    state = run.state
    rows = run.result["leaderboard"]
    best = rows[0]
    t0 = time.time()
    res = B.table_baselines(table, run.frame, run.raw("train"), run.raw("val"), fraction=0.2, seed=0)
    baseline_s = time.time() - t0
    same = res["same_split"]
    learned_name, learned = B.best_learned(same, table.task, table.direction)
    value = float(best[table.metric])
    return {
        "table": table.name, "notes": table.notes, "task": table.task, "metric": table.metric,
        "direction": table.direction, "rows": len(run.frame), "split_rows": run.meta["rows"],
        "split": run.meta.get("split"), "configs": len(state["configs"]), "epochs": epochs,
        "study": {"best": value, "best_model": best["model_id"], "best_params": best["params"],
                  "best_epoch": best.get("best_epoch"),
                  "leaderboard": [{"model_id": r["model_id"], "params": r["params"], table.metric: r.get(table.metric),
                                   "status": r["status"]} for r in rows],
                  "wall_s": round(run.wall_s, 1)},
        "baselines": res, "baseline_s": round(baseline_s, 1),
        "best_baseline": {"name": learned_name, "value": learned},
        "gap_to_best_baseline": value - learned,
        "beats_constant": not B.better(same[B.constant_key(table.task)], value, table.direction),
    }


def print_table(results: list[dict]) -> None:
    head = ["table", "metric", "rows", "cfg×ep", "study", "constant", "linear", "hist_gb", "best sklearn",
            "gap", "random-split best", "wall s"]
    lines = [head]
    for r in results:
        same, rand = r["baselines"]["same_split"], r["baselines"]["random_split"]
        const = same.get("majority", same.get("mean"))
        linear = same.get("logistic", same.get("ridge"))
        rand_best = (max if r["direction"] == "max" else min)(v for k, v in rand.items() if k not in ("majority", "mean"))
        fmt = (lambda v: f"{v:.4f}") if r["direction"] == "max" else (lambda v: f"{v:.1f}")
        lines.append([r["table"], r["metric"], str(r["rows"]), f"{r['configs']}×{r['epochs']}", fmt(r["study"]["best"]),
                      fmt(const), fmt(linear), fmt(same["hist_gb"]),
                      f"{r['best_baseline']['name']} {fmt(r['best_baseline']['value'])}",
                      f"{r['gap_to_best_baseline']:+.4f}" if r["direction"] == "max" else
                      f"{r['gap_to_best_baseline']:+.1f}", fmt(rand_best), f"{r['study']['wall_s']:.0f}"])
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    for i, row in enumerate(lines):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print("(study and baselines on the study's own split; gap = study - best sklearn, in the metric's units; "
          "random-split best = best sklearn baseline on sklearn's stratified train_test_split)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--only", default="", help="comma-separated table names")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (stores, MLflow db)")
    args = ap.parse_args(argv)
    _env()
    from cerebro_ops.spark.session import get_spark
    from tests.realdata.corpus import TABLES

    names = [n for n in args.only.split(",") if n] or list(TABLES)
    unknown = sorted(set(names) - set(TABLES))
    if unknown:
        ap.error(f"unknown table(s) {unknown}; choose from {sorted(TABLES)}")
    work = Path(tempfile.mkdtemp(prefix="cerebro-realdata-"))
    spark = get_spark("local[2]", app_name="cerebro-realdata-bench")
    load_start = os.getloadavg()
    results = []
    try:
        for n in names:
            print(f"[realdata] {n}: {args.epochs} epochs x {len(SPACE['hidden_units']) * len(SPACE['learning_rate'])} "
                  "configs", flush=True)
            results.append(bench_table(TABLES[n], work / n, spark, args.epochs, SPACE))
    finally:
        spark.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip() or "?"
    out = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "git_commit": commit, "nproc": os.cpu_count(),
           "loadavg_start": load_start, "loadavg_end": os.getloadavg(), "space": SPACE, "tables": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")
    print_table(results)
    print(f"wrote {args.out}" + (f"; work dir {work}" if args.keep else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
