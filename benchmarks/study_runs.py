"""One MOP study, run in this process (`run_mop`) or as the user runs it, `cerebro-ops run` (`run_cli`, and
`run_cli_on_server`: against a Spark Connect server that is already up).

Both return the same dict: the hop records, the final and per-epoch validation losses, the configs and where
the prepared data lives (for the baselines to train on the very same rows)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .common import LOGS, ROOT


class _Progress:
    def __init__(self):
        self.epoch_start: dict[int, float] = {}

    def start_epoch(self, epoch: int) -> None:
        self.epoch_start[epoch] = time.time()

    def record(self, rec: dict) -> None:
        pass


def _outcome(spec, run_id: str) -> dict:
    from cerebro_ops import study

    state = study.load_state(spec, run_id)
    val = {m: (h[-1].get("val_loss") if h else None) for m, h in state["history"].items()}
    curves = {m: [x.get("val_loss") for x in h] for m, h in state["history"].items()}
    return {"run_id": run_id, "records": study.hop_records(spec, run_id), "val_loss": val,
            "val_loss_curves": curves, "status": state["status"], "configs": state["configs"],
            "meta": state["meta"], "data_url": study.repository(spec, run_id).store.url("data"),
            "builder": spec.model_builder}


def run_mop(spec_path: Path) -> dict:
    """study.run in this process, without registering; study wall and the epoch-1 launch time."""
    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec

    spec = load_spec(str(spec_path))
    prog = _Progress()
    t0 = time.time()
    res = study.run(spec, progress=prog, register_model=False)
    t1 = time.time()
    out = _outcome(spec, res["run_id"])
    out.update(run_start=t0, run_end=t1, study_wall_s=t1 - t0, prepare_s=prog.epoch_start.get(1, t1) - t0,
               epoch_start=prog.epoch_start)
    return out


def run_cli(spec_path: Path, timeout: int = 3600, env: dict | None = None) -> dict:
    """`python -m cerebro_ops.cli run SPEC` in a fresh process: the wall from its start to its exit, after
    the champion is registered (end to end as a user sees it); then the run's records from the store."""
    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec

    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"cli_{spec_path.stem}.log"
    t0 = time.time()
    with open(log, "w") as fh:
        p = subprocess.run([sys.executable, "-m", "cerebro_ops.cli", "run", str(spec_path)], cwd=ROOT,
                           stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, env=env or dict(os.environ))
    t1 = time.time()
    text = log.read_text(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"cerebro-ops run exited {p.returncode}: {text[-2000:]}")
    spec = load_spec(str(spec_path))
    out = _outcome(spec, study.latest_run(spec))
    out.update(run_start=t0, run_end=t1, study_wall_s=t1 - t0, prepare_s=None, epoch_start={},
               registered="champion:" in text, log=str(log))
    return out


def run_cli_on_server(spec_path: Path, work: Path, workers: int, timeout: int = 3600) -> dict:
    """`cerebro-ops run` against a Spark Connect server that is already running and has served a study before,
    as a team's cluster (or this project's Airflow deployment, scripts/airflow_local.py) is: the spec's
    runtime.spark_master is the server's sc:// URL, everything else as in run_cli. The server is started here
    (local[W], the settings `make spark-connect` uses); the study runs twice on it and the second run is the
    one timed: the first pays the server's JVM warm-up and its Python daemon's TensorFlow import, once per
    server. Both studies log to one MLflow database, as a team's tracking server outlives its studies; the timed
    one has its own study name, so it registers its first champion. {"wall_s": the second run's process start to
    exit, "first_wall_s", "server_start_s"}."""
    import secrets

    import yaml

    from scripts.airflow_local import TOKEN_ENV, free_port, spark_connect_server

    port = free_port()
    token = secrets.token_hex(16)
    env = {**os.environ, TOKEN_ENV: token}
    raw = yaml.safe_load(spec_path.read_text())
    name = raw["name"]
    specs = []
    for k in (1, 2):
        # One MLflow database, as a team's tracking server outlives a study (the first study creates its schema);
        # a study name and a store each, so the timed study registers its first champion, as run_cli's does.
        # sc://localhost: pyspark sends the token over plain gRPC to localhost only (else it asks for TLS)
        raw["name"] = f"{name}_server_{k}"
        raw["runtime"] = {**raw["runtime"], "spark_master": f"sc://localhost:{port}",
                          "store": (work / f"server-store-{k}").as_uri(),
                          "tracking_uri": f"sqlite:///{work / 'server-mlflow.db'}"}
        specs.append(work / f"{spec_path.stem}_on_server_{k}.yaml")
        specs[-1].write_text(yaml.safe_dump(raw, sort_keys=False))
    LOGS.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with spark_connect_server(workers, env, LOGS / f"connect_{spec_path.stem}.log", port=port, timeout=300):
        started = time.time() - t0
        first = run_cli(specs[0], timeout, env)
        second = run_cli(specs[1], timeout, env)
    return {"wall_s": second["study_wall_s"], "first_wall_s": first["study_wall_s"], "server_start_s": started,
            "registered": second["registered"]}
