"""What every benchmark module shares: paths, workloads, environment, machine record, spec writer, data.

Imports no other benchmarks module (every other one may import this), so the modules' import graph stays
acyclic (tests/benchmarks/test_import_graph.py checks it).
"""
from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
LOGS = ROOT / ".cerebro" / "bench-logs"

FLIGHTS_DATA = {"label": "delayed", "task": "binary",
                "numeric": ["month", "day", "dep_time", "sched_dep_time", "dep_delay", "sched_arr_time", "distance",
                            "hour", "minute"],
                "categorical": ["carrier", "origin", "dest"], "validation_fraction": 0.2, "max_categories": 50}
DIGITS_DATA = {"label": "digit", "task": "multiclass", "arrays": {"pixels": [8, 8, 1]}, "validation_fraction": 0.2}
# sklearn digits upsampled to 32 x 32 and jittered into more rows: a CNN hop then trains for seconds
IMAGES_SIDE, IMAGES_ROWS = 32, 8000
IMAGES_DATA = {"label": "digit", "task": "multiclass", "arrays": {"pixels": [IMAGES_SIDE, IMAGES_SIDE, 1]},
               "validation_fraction": 0.2}
MLP, CNN = "cerebro_ops.builders:mlp", "cerebro_ops.builders:cnn"
FLIGHTS_GRID = {"hidden_units": [32, 64], "learning_rate": [0.001, 0.003], "batch_size": [256, 1024]}

# seeds: the spec seeds MOP runs with (each also draws its own train/validation split); the own-loop
# sequential reference is trained with the same seed on the same split, so the two spreads compare.
WORKLOADS = {
    "smoke": dict(dataset="flights", rows=20_000, builder=MLP, data=FLIGHTS_DATA, epochs=2, workers=2,
                  space={"hidden_units": [32], "learning_rate": [0.001, 0.003], "batch_size": [256, 1024]},
                  seeds=[0, 1, 2, 3, 4], smoke=True, data_parallel=False),
    "flights100k": dict(dataset="flights", rows=100_000, builder=MLP, data=FLIGHTS_DATA, epochs=3, workers=2,
                        space=FLIGHTS_GRID, seeds=[0, 1, 2]),
    "flights_full": dict(dataset="flights", rows=None, builder=MLP, data=FLIGHTS_DATA, epochs=3, workers=2,
                         space=FLIGHTS_GRID, seeds=[0, 1, 2, 3, 4]),
    "flights_hetero": dict(dataset="flights", rows=100_000, builder=MLP, data=FLIGHTS_DATA, epochs=2, workers=2,
                           space={"hidden_units": [16, 256], "learning_rate": [0.001, 0.003],
                                  "batch_size": [32, 1024]}, seeds=[0, 1, 2]),
    "digits_cnn": dict(dataset="digits", rows=None, builder=CNN, data=DIGITS_DATA, epochs=3, workers=2,
                       space={"filters": [8, 16], "learning_rate": [0.001, 0.003], "dense_units": [32, 64],
                              "batch_size": [32]}, seeds=[0, 1, 2]),
    # a heavier workload: a hop of these CNNs trains for seconds, not the MLPs' tenths
    "cnn_images": dict(dataset="images", rows=IMAGES_ROWS, builder=CNN, data=IMAGES_DATA, epochs=2, workers=2,
                       space={"filters": [16, 32], "learning_rate": [0.001, 0.003], "dense_units": [64],
                              "batch_size": [64]}, seeds=[0, 1], data_parallel=False),
}


def env() -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pp = os.environ.get("PYTHONPATH", "")
    if str(ROOT) not in pp.split(os.pathsep):
        os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + pp if pp else "")


def _version(*names: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    for n in names:
        try:
            return version(n)
        except PackageNotFoundError:
            continue
    return "?"


def machine() -> dict:
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "cerebro_ops"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = "", False
    # a tree exported with `git archive` is no repository: its commit is passed in
    commit = commit or os.environ.get("CEREBRO_BENCH_COMMIT", "?")
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "nproc": os.cpu_count(),
            "mem_gib": round(int(mem) / 2**20, 1), "python": sys.version.split()[0],
            "tensorflow": _version("tensorflow-cpu", "tensorflow"), "keras": _version("keras"),
            "spark": _version("pyspark"), "git_commit": commit + ("+dirty(cerebro_ops)" if dirty else ""),
            "loadavg_start": os.getloadavg()}


def write_spec(name: str, wl: dict, work: Path, source: Path, seed: int = 0) -> Path:
    """The workload's study spec (grid search, W local Spark workers, a store and MLflow DB under `work`)."""
    n_configs = math.prod(len(v) for v in wl["space"].values())
    spec = {"name": f"bench_{name}", "seed": int(seed), "data": {"source": str(source), **wl["data"]},
            "model": {"builder": wl["builder"]},
            "search": {"method": "grid", "num_configs": n_configs, "space": wl["space"]},
            "train": {"epochs": wl["epochs"], "workers": wl["workers"], "metric": "val_loss", "direction": "min"},
            "runtime": {"store": (work / "store").as_uri(), "tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
                        "spark_master": f"local[{wl['workers']}]"}}
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"bench_{name}_s{seed}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def make_source(wl: dict, out_dir: Path) -> Path:
    """The workload's raw data as a Parquet file (the example datasets, or the generated image set)."""
    if wl["dataset"] != "images":
        from cerebro_ops.example_data import make_example_data
        return make_example_data(wl["dataset"], out_dir, rows=wl["rows"])
    return _images(out_dir, wl["rows"])


def _images(out_dir: Path, rows: int, seed: int = 0) -> Path:
    """sklearn digits upsampled to IMAGES_SIDE² pixels, each row a random digit shifted by up to 2 pixels
    with a little noise: more (and larger) images than the 1,797 of the dataset, same labels."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits

    d = load_digits()
    scale = IMAGES_SIDE // 8
    big = np.kron(d.images / 16.0, np.ones((scale, scale)))
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(big), rows)
    shifts = rng.integers(-2, 3, (rows, 2))
    imgs = np.stack([np.roll(big[i], tuple(s), axis=(0, 1)) for i, s in zip(pick, shifts)])
    imgs = np.clip(imgs + rng.normal(0, 0.05, imgs.shape), 0, 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"images_{rows}.parquet"
    pd.DataFrame({"pixels": list(imgs.reshape(rows, -1)), "digit": d.target[pick].astype("int64")}).to_parquet(path)
    return path
