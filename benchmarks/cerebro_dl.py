"""cerebro-ops vs the original Cerebro (`cerebro-dl==1.1.1`) on the same grid and the same prepared data.

    python -m benchmarks.cerebro_dl [--rows 20000] [--epochs 3] [--out cerebro_dl]    # main venv

One invocation, one system after another (never overlapping):
  1. prepare the flights data in plain pandas (numeric columns standardised, carrier/origin/dest one-hot) into
     one Parquet with a `features` float array column and a float `label` column that both systems read;
  2. cerebro-ops: `study.run` of a spec declaring `features` as an array feature (local[2], 2 workers);
  3. plain sequential Keras (same process, MOP's train/val split) for reference;
  4. cerebro-dl: this same file run by the separate venv's python (`--cdl-worker`): SparkBackend on local[2],
     2 workers, LocalStore in a temporary directory, GridSearch over the same 4 configs.
Writes benchmarks/results/<out>.json and prints a table.

The cerebro-dl venv (outside the repo; TF 2.15 / Keras 2 / Spark 3.5 pins that cerebro-dl's 2020-era code needs):
    uv venv -p python3.11 /work/cdl-venv && VIRTUAL_ENV=/work/cdl-venv uv pip install cerebro-dl==1.1.1 \
        tensorflow-cpu==2.15.1 pyspark==3.5.9 pyarrow==14.0.2 numpy==1.26.4 pandas==2.2.3
The `--cdl-worker` mode must not import anything from cerebro_ops (it runs in that other venv).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CDL_PYTHON = os.environ.get("CEREBRO_DL_PYTHON", "/work/cdl-venv/bin/python")
NUMERIC = ["month", "day", "dep_time", "sched_dep_time", "dep_delay", "sched_arr_time", "distance", "hour", "minute"]
CATEGORICAL = ["carrier", "origin", "dest"]
GRID = {"learning_rate": [0.001, 0.003], "batch_size": [256, 1024]}
HIDDEN = 32  # two hidden Dense(32, relu) layers, Dense(1, sigmoid) head: cerebro_ops.builders:mlp
VALIDATION = 0.2
WORKERS = 2


def configs() -> list[dict]:
    return [{"learning_rate": lr, "batch_size": bs} for lr in GRID["learning_rate"] for bs in GRID["batch_size"]]


def key(c: dict) -> str:
    return f"lr={c['learning_rate']:g},bs={int(c['batch_size'])}"


# ------------------------------------------------------------------------------------- cerebro-dl (other venv)

def cdl_worker(data: str, epochs: int, out: str) -> None:
    t_total = time.time()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    # cerebro-dl 1.1.1 checks isinstance(opt, tf.keras.optimizers.Optimizer); with TF 2.15 only the legacy one fits.
    tf.keras.optimizers.Optimizer = tf.keras.optimizers.legacy.Optimizer
    from pyspark.sql import SparkSession

    from cerebro.backend import SparkBackend
    from cerebro.keras import SparkEstimator
    from cerebro.storage import LocalStore
    from cerebro.tune import GridSearch, hp_choice

    spark = (SparkSession.builder.master(f"local[{WORKERS}]").appName("cerebro-dl-bench")
             .config("spark.driver.memory", "4g").config("spark.ui.enabled", "false").getOrCreate())
    backend = SparkBackend(spark_context=spark.sparkContext, num_workers=WORKERS)
    store_dir = tempfile.mkdtemp(prefix="cdl-store-")
    store = LocalStore(prefix_path=store_dir)
    # A small Parquet is one Spark partition; cerebro-dl then writes one row group per split and petastorm refuses
    # to shard one row group over 2 workers ("Number of row-groups ... must be greater or equal to ... shards").
    df = spark.read.parquet(data).repartition(WORKERS)
    n_features = len(df.first()["features"])

    def estimator_gen_fn(params):
        model = tf.keras.models.Sequential([
            tf.keras.layers.Input(shape=(n_features,), name="features"),
            tf.keras.layers.Dense(HIDDEN, activation="relu"),
            tf.keras.layers.Dense(HIDDEN, activation="relu"),
            tf.keras.layers.Dense(1, activation="sigmoid")])
        opt = tf.keras.optimizers.legacy.Adam(learning_rate=params["learning_rate"])
        return SparkEstimator(model=model, optimizer=opt, loss="binary_crossentropy", metrics=["acc"],
                              batch_size=int(params["batch_size"]))

    space = {"learning_rate": hp_choice(GRID["learning_rate"]), "batch_size": hp_choice(GRID["batch_size"])}
    gs = GridSearch(backend, store, estimator_gen_fn, space, num_epochs=epochs, evaluation_metric="loss",
                    validation=VALIDATION, label_columns=["label"], feature_columns=["features"], verbose=1)
    inner = gs._fit_on_prepared_data  # the epochs only (after prepare_data, worker and data-loader start)
    train = {}

    def timed(metadata):
        t = time.time()
        try:
            return inner(metadata)
        finally:
            train["s"] = time.time() - t
    gs._fit_on_prepared_data = timed
    t0 = time.time()
    try:
        result = gs.fit(df)
    except BaseException:
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)  # cerebro-dl's service threads otherwise keep the process alive after a failure
    fit_s = time.time() - t0
    val, curves = {}, {}
    # result.metrics: run_id -> {'loss': [...], 'val_loss': [...], ...}; estimators were made in param-map order
    run_ids = sorted(result.metrics, key=lambda r: int(r.split("_")[1]))
    for params, rid in zip(gs.estimator_param_maps, run_ids):
        h = result.metrics[rid]
        curves[key(params)] = [float(v) for v in h.get("val_loss", [])]
        val[key(params)] = curves[key(params)][-1] if curves[key(params)] else None
    spark.stop()
    Path(out).write_text(json.dumps({
        "status": "ok", "train_s": train.get("s"), "fit_s": fit_s, "total_s": time.time() - t_total, "val_loss": val, "val_loss_curves": curves,
        "train_loss_curves": {key(p): [float(v) for v in result.metrics[r].get("train_loss", [])]
                              for p, r in zip(gs.estimator_param_maps, run_ids)},
        "versions": {"python": sys.version.split()[0], "tensorflow": tf.__version__,
                     "pyspark": __import__("pyspark").__version__, "cerebro-dl": _dist_version("cerebro-dl")},
        "store": store_dir}, indent=1))
    import shutil
    shutil.rmtree(store_dir, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # same: do not wait for cerebro-dl's non-daemon threads


def _dist_version(name: str) -> str:
    from importlib.metadata import version
    try:
        return version(name)
    except Exception:
        return "?"


# ------------------------------------------------------------------------------------- main venv

def prepare(rows: int, work: Path) -> tuple[Path, int]:
    import numpy as np
    import pandas as pd
    from cerebro_ops.example_data import make_example_data

    src = make_example_data("flights", work / "raw", rows=rows)
    df = pd.read_parquet(src)
    num = df[NUMERIC].astype("float64")
    num = ((num - num.mean()) / num.std(ddof=0).replace(0, 1)).fillna(0.0)
    cat = pd.get_dummies(df[CATEGORICAL].astype(str), dtype="float64")
    x = np.concatenate([num.to_numpy(), cat.to_numpy()], axis=1).astype("float32")
    out = work / "prepared.parquet"
    pd.DataFrame({"features": list(x), "label": df["delayed"].astype("float32").to_numpy()}).to_parquet(out)
    return out, x.shape[1]


def run_cerebro_ops(data: Path, n: int, epochs: int, work: Path) -> dict:
    import yaml

    from .study_runs import run_mop

    space = {"hidden_units": [HIDDEN], **GRID}
    spec = {"name": "bench_cerebro_dl_cmp", "seed": 0,
            "data": {"source": str(data), "label": "label", "task": "binary", "arrays": {"features": [n]},
                     "validation_fraction": VALIDATION},
            "model": {"builder": "cerebro_ops.builders:mlp"},
            "search": {"method": "grid", "num_configs": len(configs()), "space": space},
            "train": {"epochs": epochs, "workers": WORKERS, "metric": "val_loss", "direction": "min"},
            "runtime": {"store": (work / "store").as_uri(), "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
                        "spark_master": f"local[{WORKERS}]"}}
    work.mkdir(parents=True, exist_ok=True)
    path = work / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    mop = run_mop(path)
    val, curves = {}, {}
    for m, params in mop["configs"].items():
        val[key(params)] = mop["val_loss"][m]
        curves[key(params)] = mop["val_loss_curves"][m]
    e1 = mop["epoch_start"].get(1, mop["run_end"])
    starts = [r["start"] for r in mop["records"] if "start" in r]
    ends = [r["end"] for r in mop["records"] if "end" in r]
    return {"status": mop["status"], "total_s": mop["study_wall_s"], "train_s": mop["run_end"] - e1,
            "makespan_s": (max(ends) - min(starts)) if starts and ends else None, "prepare_s": mop["prepare_s"],
            "val_loss": val, "val_loss_curves": curves, "_mop": mop}


def run_sequential(mop: dict, epochs: int) -> dict:
    from cerebro_ops.data.reader import load_split

    from .baselines import train_config

    shape = tuple(mop["meta"]["input_shape"])
    x, y = load_split(mop["data_url"], "train", shape)
    xv, yv = load_split(mop["data_url"], "val", shape)
    t0 = time.time()
    val, curves = {}, {}
    for m, params in mop["configs"].items():
        r = train_config(mop["builder"], params, mop["meta"], (x, y, xv, yv), epochs, seed=0)
        val[key(params)], curves[key(params)] = r["val_loss"][-1], r["val_loss"]
    return {"fit_s": time.time() - t0, "val_loss": val, "val_loss_curves": curves}


def run_cdl(data: Path, epochs: int, work: Path, timeout: int) -> dict:
    out = work / "cdl.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYSPARK_PYTHON",
                                                          "PYSPARK_DRIVER_PYTHON", "SPARK_HOME")}
    env.update({"PYSPARK_PYTHON": CDL_PYTHON, "PYSPARK_DRIVER_PYTHON": CDL_PYTHON, "SPARK_LOCAL_IP": "127.0.0.1",
                "TF_CPP_MIN_LOG_LEVEL": "2"})
    cmd = [CDL_PYTHON, str(Path(__file__).resolve()), "--cdl-worker", "--data", str(data), "--epochs", str(epochs),
           "--json", str(out)]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(work))
    except subprocess.TimeoutExpired as exc:
        return {"status": "failed", "error": f"timeout after {timeout}s", "wall_s": time.time() - t0,
                "log_tail": str(exc.stderr or "")[-3000:]}
    (work / "cdl.log").write_text(p.stdout + "\n--- stderr ---\n" + p.stderr)
    if p.returncode != 0 or not out.exists():
        return {"status": "failed", "returncode": p.returncode, "wall_s": time.time() - t0,
                "log_tail": (p.stdout + p.stderr)[-4000:]}
    res = json.loads(out.read_text())
    res["subprocess_wall_s"] = time.time() - t0
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cerebro_dl")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", default="cerebro_dl", help="results/<out>.json")
    ap.add_argument("--timeout", type=int, default=1800, help="cerebro-dl subprocess timeout (s)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--cdl-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cdl_worker:
        cdl_worker(args.data, args.epochs, args.json)
        return 0

    import shutil

    from .common import env, machine
    env()
    work = Path(tempfile.mkdtemp(prefix="cerebro-dl-bench-"))
    info = machine()
    print(f"scratch {work}; machine {info}", flush=True)
    try:
        data, n = prepare(args.rows, work)
        print(f"prepared {args.rows} rows, {n} features -> {data}; cerebro-ops ...", flush=True)
        ops = run_cerebro_ops(data, n, args.epochs, work / "ops")
        mop = ops.pop("_mop")
        print(f"cerebro-ops: total {ops['total_s']:.1f}s, train {ops['train_s']:.1f}s; sequential Keras ...", flush=True)
        seq = run_sequential(mop, args.epochs)
        print(f"sequential: {seq['fit_s']:.1f}s; cerebro-dl ...", flush=True)
        cdl = run_cdl(data, args.epochs, work, args.timeout)
        res = {"name": args.out, "rows": args.rows, "n_features": n, "epochs": args.epochs, "workers": WORKERS,
               "validation": VALIDATION, "grid": GRID, "hidden": [HIDDEN, HIDDEN],
               "machine": {**info, "loadavg_end": os.getloadavg()},
               "cerebro_ops": ops, "sequential_keras": seq, "cerebro_dl": cdl}
        if cdl.get("status") == "ok":
            res["ratio"] = {"train_ops_over_cdl": ops["train_s"] / cdl["train_s"],
                            "end_to_end_ops_over_cdl": ops["total_s"] / cdl["fit_s"],
                            "ops_over_cdl_process": ops["total_s"] / cdl["total_s"]}
        out = HERE / "results" / f"{args.out}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1, default=str))
        print(table(res))
        if cdl.get("status") != "ok":
            print(f"cerebro-dl FAILED: {cdl.get('error') or cdl.get('returncode')}\n{cdl.get('log_tail', '')}")
            return 1
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _f(v, fmt=".4f") -> str:
    return "–" if v is None else format(v, fmt)


def table(res: dict) -> str:
    ops, seq, cdl = res["cerebro_ops"], res["sequential_keras"], res["cerebro_dl"]
    lines = [f"{res['rows']} rows, {res['n_features']} features, {len(configs())} configs × {res['epochs']} epochs, "
             f"W={res['workers']}", "",
             "| | training (epochs) s | end to end s | whole process s |", "|---|---|---|---|",
             f"| cerebro-ops (study.run) | {_f(ops['train_s'], '.1f')} | {_f(ops['total_s'], '.1f')} | – |",
             f"| cerebro-dl 1.1.1 (GridSearch.fit) | {_f(cdl.get('train_s'), '.1f')} | {_f(cdl.get('fit_s'), '.1f')} "
             f"| {_f(cdl.get('total_s'), '.1f')} |",
             f"| sequential Keras (1 process) | {_f(seq['fit_s'], '.1f')} | – | – |"]
    if "ratio" in res:
        r = res["ratio"]
        lines.append(f"\ncerebro-ops / cerebro-dl: training {r['train_ops_over_cdl']:.2f}, "
                     f"end to end {r['end_to_end_ops_over_cdl']:.2f}")
    lines += ["", "| config | cerebro-ops val loss | cerebro-dl val loss | sequential Keras val loss |",
              "|---|---|---|---|"]
    for c in configs():
        k = key(c)
        lines.append(f"| {k} | {_f(ops['val_loss'].get(k))} | {_f((cdl.get('val_loss') or {}).get(k))} | "
                     f"{_f(seq['val_loss'].get(k))} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
