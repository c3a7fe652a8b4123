"""Streamed vs cached partitions: `python -m benchmarks.streaming [--rows N] [--width K] [--budget-mb MB]`.

One generated train partition (and a small validation partition) is written with pyarrow; then one worker
(W = 1, the epoch driver with its worker in a thread, one fresh process per mode, so each process's peak RSS is
that worker's) trains one model for a few epochs twice: cached (a budget the partition fits in) and streamed
(--budget-mb, several times smaller than the partition). Reported per mode: training throughput (rows per
second of hop wall time, and of train time alone, over the epochs after the first, which traces the loops and
makes the local copy), peak RSS over the process's warm baseline (TensorFlow imported, the model built and
traced), and the bytes each hop read and where from. The modes run alternately --repeats times (the CPUs may
be shared) and the faster run of each is reported. Writes benchmarks/results/streaming.json, prints a table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MLP = "cerebro_ops.builders:mlp"
PARAMS = {"hidden_units": 256, "num_layers": 2, "learning_rate": 0.001, "batch_size": 512}


def write_table(root: Path, rows: int, width: int, chunk: int = 50_000) -> int:
    """data/train/_partition=0 (`rows` random rows) and data/val/_partition=0 (rows // 20); the train bytes."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("features", pa.list_(pa.float32())), ("label", pa.float32()), ("_order", pa.int64())])
    sizes = {}
    for split, n in (("train", rows), ("val", max(1000, rows // 20))):
        folder = root / "data" / split / "_partition=0"
        folder.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(folder / "part-00000.parquet", schema, compression="none") as w:
            for start in range(0, n, chunk):
                m = min(chunk, n - start)
                x = np.random.default_rng(start + (0 if split == "train" else 1 << 30)).normal(size=(m, width))
                x = x.astype(np.float32)
                y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
                feats = pa.ListArray.from_arrays(pa.array(np.arange(0, (m + 1) * width, width, dtype=np.int32)),
                                                 pa.array(x.reshape(-1)))
                w.write_table(pa.table([feats, pa.array(y), pa.array(np.arange(start, start + m))], schema=schema))
        sizes[split] = (folder / "part-00000.parquet").stat().st_size
    return sizes["train"]


def child(root: str, width: int, budget_mb: int, epochs: int, tag: str) -> dict:
    """One mode, in this (fresh) process: the worker's records and this process's peak RSS."""
    import numpy as np

    from cerebro_ops.keras.trainer import DataInfo, HopTrainer
    from cerebro_ops.mop.epoch import EpochContext, EpochDriver, thread_launcher
    from cerebro_ops.store import Store

    store = Store(f"file://{root}/run-{tag}")
    trainer = HopTrainer(DataInfo((width,), "binary", 2))
    ckpt = trainer.initial_checkpoint(MLP, PARAMS, 1)
    x, y = np.zeros((4096, width), np.float32), np.zeros(4096, np.float32)
    trainer.train(MLP, PARAMS, ckpt, x, y, seed=1)  # the loops traced before the baseline is taken
    trainer.evaluate_part(MLP, PARAMS, None, [(x, y)], None)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = {"m0": {"ckpt": "init.npz", "sha256": store.write_blob("init.npz", ckpt)}}
    meta = {"input_shape": [width], "task": "binary", "num_classes": 2}
    records = []
    for epoch in range(1, epochs + 1):
        ctx = EpochContext(store, epoch, {"m0": PARAMS}, start, MLP, 7, 1, f"file://{root}/data", meta,
                           hop_order="fixed", validation="partitioned", memory_mb=budget_mb,
                           local_dir=f"{root}/local-{tag}")
        res = EpochDriver(ctx, thread_launcher(1)).run()
        start = {"m0": res.models["m0"].ckpt}
        records += [{**r, "val": res.models["m0"].val} for r in res.records]
    keep = ("epoch", "kind", "n", "start", "end", "train_s", "rows_from", "bytes_read", "data_mode", "val")
    return {"baseline_kb": baseline, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "records": [{k: r.get(k) for k in keep} for r in records]}


def summarise(mode: str, got: dict) -> dict:
    train = [r for r in got["records"] if r["kind"] == "train"]
    steady = [r for r in train if r["epoch"] > 1]
    rows = sum(r["n"] for r in steady)
    return {"mode": mode, "data_mode": train[0]["data_mode"],
            "rows_per_s_hop": rows / sum(r["end"] - r["start"] for r in steady),
            "rows_per_s_train": rows / sum(r["train_s"] for r in steady),
            "baseline_rss_mb": got["baseline_kb"] / 1024, "peak_rss_mb": got["peak_kb"] / 1024,
            "rss_over_baseline_mb": (got["peak_kb"] - got["baseline_kb"]) / 1024,
            "hops": [{"epoch": r["epoch"], "rows_from": r["rows_from"], "bytes_read": r["bytes_read"]}
                     for r in train],
            "val": train[-1].get("val")}


def run_mode(root: Path, width: int, budget_mb: int, epochs: int, tag: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-m", "benchmarks.streaming", "--child", str(root), "--width", str(width),
                          "--budget-mb", str(budget_mb), "--epochs", str(epochs), "--tag", tag],
                         capture_output=True, text=True,
                         env=env, cwd=HERE.parent, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=600_000)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--budget-mb", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--child")
    ap.add_argument("--tag", default="run")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.width, args.budget_mb, args.epochs, args.tag)))
        return {}
    with tempfile.TemporaryDirectory(prefix="cerebro-streaming-") as tmp:
        size = write_table(Path(tmp), args.rows, args.width)
        runs: dict[str, list] = {"cached": [], "streamed": []}
        for rep in range(args.repeats):  # alternated: the CPUs may be shared, so each mode sees the same load
            for mode, budget in (("cached", 8192), ("streamed", args.budget_mb)):
                got = run_mode(Path(tmp), args.width, budget, args.epochs, f"{mode}-{rep}")
                runs[mode].append(summarise(mode, got))
        modes = [{**max(r, key=lambda m: m["rows_per_s_hop"]), "rows_per_s_hop_runs": [m["rows_per_s_hop"] for m in r]}
                 for r in runs.values()]
    result = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "rows": args.rows,
              "width": args.width, "train_partition_mb": size / (1 << 20), "budget_mb": args.budget_mb,
              "epochs": args.epochs, "repeats": args.repeats, "params": PARAMS, "cpus": os.cpu_count(), "modes": modes,
              "streamed_over_cached_hop": modes[1]["rows_per_s_hop"] / modes[0]["rows_per_s_hop"],
              "streamed_over_cached_train": modes[1]["rows_per_s_train"] / modes[0]["rows_per_s_train"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "streaming.json").write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    return result


def print_table(r: dict) -> None:
    print(f"train partition {r['train_partition_mb']:.0f} MB ({r['rows']} rows × {r['width']} floats), "
          f"streamed budget {r['budget_mb']} MB, {r['epochs']} epochs, one worker")
    print(f"{'mode':<9} {'rows/s hop':>11} {'rows/s train':>13} {'peak RSS MB':>12} {'over base MB':>13}  "
          "bytes read per train hop (from)")
    for m in r["modes"]:
        hops = ", ".join(f"{h['bytes_read'] / (1 << 20):.0f} MB ({h['rows_from']})" for h in m["hops"])
        print(f"{m['mode']:<9} {m['rows_per_s_hop']:>11.0f} {m['rows_per_s_train']:>13.0f} {m['peak_rss_mb']:>12.0f} "
              f"{m['rss_over_baseline_mb']:>13.0f}  {hops}")
    print(f"streamed / cached throughput: {r['streamed_over_cached_hop']:.2f} (hop wall), "
          f"{r['streamed_over_cached_train']:.2f} (train time)")


if __name__ == "__main__":
    main()
