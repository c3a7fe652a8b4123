"""The real Airflow scheduler (`make airflow-ui`'s setup: LocalExecutor, warm Spark Connect session) against the
CLI on the same spec: wall of each epoch task against the CLI's epoch wall.

    python -m benchmarks.airflow_real                                # the demo spec on the dummy data
    python -m benchmarks.airflow_real --workload flights_full --epochs 5   # on an idle machine

One after the other, never overlapping: (1) scripts/airflow_local.py up with a throw-away AIRFLOW_HOME and free
ports, the spec's DAG triggered through the REST API, task durations read back, everything stopped; (2) the
same spec (its own store and MLflow db) through the CLI's code path, study.run's steps, each timed, in one
process with one local[W] Spark session. Writes benchmarks/results/airflow_real.json (or --out).

What an epoch task's wall holds that the CLI's epoch does not: the task process start, the DAG parse, joining
the Spark Connect session, the run state and MLflow reads, and the launch and end of one Spark job per task
(`outside_hops_s`: per epoch, the task's seconds before its first hop and after its last). Not in it: the
scheduler's hand-offs between tasks (`gap_s`: from one epoch task's end to the next one's start).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.common import WORKLOADS, machine, write_spec
from benchmarks.common import env as _env

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DEMO_SPEC = ROOT / "dags" / "specs" / "demo.yaml"


def make_spec(workload: str, epochs: int | None, work: Path) -> Path:
    """The workload's spec in `work`/dags/specs (absolute data path, tmp store and MLflow db)."""
    from cerebro_ops.example_data import make_example_data

    specs = work / "dags" / "specs"
    specs.mkdir(parents=True)
    if workload == "demo":
        raw = yaml.safe_load(DEMO_SPEC.read_text())
        raw["data"]["source"] = str(make_example_data("dummy", work / "data"))
        raw["runtime"] = {"store": (work / "store").as_uri(), "tracking_uri": f"sqlite:///{work / 'mlflow.db'}"}
    else:
        wl = WORKLOADS[workload]
        source = make_example_data(wl["dataset"], work / "data", rows=wl["rows"])
        raw = yaml.safe_load(write_spec(workload, wl, work, source).read_text())
    raw["name"] = f"bench_af_{workload}"
    if epochs:
        raw["train"]["epochs"] = epochs
    path = specs / f"{raw['name']}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def cli_copy(spec_path: Path, work: Path) -> Path:
    """The same spec with its own store and MLflow db, for the CLI run."""
    raw = yaml.safe_load(spec_path.read_text())
    raw["runtime"] = {**raw.get("runtime", {}), "store": (work / "cli-store").as_uri(),
                      "tracking_uri": f"sqlite:///{work / 'cli-mlflow.db'}"}
    path = work / "cli.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# ----------------------------------------------------------------------------------------------- Airflow
def _iso(s: str | None) -> float | None:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() if s else None


def run_airflow(spec_path: Path, work: Path, epochs: int, timeout: float) -> dict:
    from scripts.airflow_local import RestClient, free_port, poll, wait_for_run

    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec

    spec = load_spec(spec_path)
    home = work / "airflow"
    shutil.copy(ROOT / "dags" / "cerebro_dags.py", spec_path.parent.parent / "cerebro_dags.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "CEREBRO_AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(spec_path.parent.parent),
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
                "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")})
    port, spark_port = free_port(), free_port()
    log = open(work / "airflow-up.log", "w")
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "airflow_local.py"), "up", "--port", str(port),
                             "--spark-port", str(spark_port)], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = RestClient(port)
        poll("api-server", lambda: client.request("/api/v2/monitor/health"), 300)
        ready = time.time()
        client.login(json.loads((home / "passwords.json").read_text())["admin"])
        poll("DAG parsed", lambda: client.dag(spec.dag_id), 300)
        triggered = time.time()
        run_id = client.trigger(spec.dag_id, {"epochs": epochs})
        state = wait_for_run(client, spec.dag_id, run_id, timeout)
        done = time.time()
        tis = client.task_instances(spec.dag_id, run_id)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        log.close()
    tasks = {t["task_id"]: {"state": t["state"], "start": _iso(t.get("start_date")), "end": _iso(t.get("end_date")),
                            "duration_s": t.get("duration")} for t in tis}
    epochs_ = sorted((t for k, t in tasks.items() if k.rsplit(".", 1)[-1].startswith("epoch_")
                      and t["state"] == "success"), key=lambda t: t["start"])
    records = study.hop_records(spec, study.latest_run(spec)) if state == "success" else []
    return {"state": state, "startup_s": ready - t0, "dag_run_s": done - triggered, "tasks": tasks,
            "epoch_task_s": [t["duration_s"] for t in epochs_],
            "gap_s": [b["start"] - a["end"] for a, b in zip(epochs_, epochs_[1:]) if a["end"] and b["start"]],
            "hop_span_s": _hop_spans(records), "worker_pids": _worker_pids(records),
            "outside_hops_s": _outside_hops(records, tasks)}


def _epoch_bounds(records: list[dict]) -> dict[int, tuple[float, float]]:
    """Per epoch (in order), its first hop's start and its last hop's end."""
    out: dict[int, list] = {}
    for r in records:
        span = out.setdefault(r["epoch"], [r["start"], r["end"]])
        span[0], span[1] = min(span[0], r["start"]), max(span[1], r["end"])
    return {e: (a, b) for e, (a, b) in sorted(out.items())}


def _hop_spans(records: list[dict]) -> dict[int, float]:
    """Per epoch, first hop start to last hop end: the training inside the epoch, without its overhead."""
    return {e: round(b - a, 3) for e, (a, b) in _epoch_bounds(records).items()}


def _outside_hops(records: list[dict], tasks: dict[str, dict]) -> dict[int, dict[str, float]]:
    """Per epoch, what its task spent outside the hops: from the task's start to its first hop (Airflow's task
    start, the DAG parse, joining Spark, the run state, the epoch job's launch) and from its last hop to the
    task's end (the job's end, the epoch record, MLflow, the run state, Airflow's hand-back)."""
    out = {}
    for e, (first, last) in _epoch_bounds(records).items():
        task = tasks.get(f"epoch_{e}") or {}
        if task.get("start") and task.get("end"):
            out[e] = {"before_first_hop_s": round(first - task["start"], 3),
                      "after_last_hop_s": round(task["end"] - last, 3)}
    return out


def _worker_pids(records: list[dict]) -> dict[int, list]:
    return {e: sorted({r.get("pid") for r in records if r["epoch"] == e}) for e in sorted({r["epoch"] for r in records})}


# ----------------------------------------------------------------------------------------------- CLI
def run_cli(spec_path: Path) -> dict:
    """study.run's steps (the CLI's code path) in this process, each timed; one Spark session for all, and as
    in `cerebro-ops run` the epochs' workers and MLflow logging thread kept across steps (study.KeptAcrossSteps):
    an epoch's time is what a CLI user waits for it."""
    from cerebro_ops import study
    from cerebro_ops.core.plan import build_plan, step_call
    from cerebro_ops.spark.session import get_spark
    from cerebro_ops.core.spec import load_spec

    spec = load_spec(spec_path)
    t0 = time.time()
    spark = get_spark(spec.runtime.spark_master or f"local[{spec.train.workers}]", app_name="bench-airflow-real")
    spark_s = time.time() - t0
    run_id = study.new_run_id()
    steps: dict[str, float] = {}
    t = time.time()
    state = study.prepare(spec, run_id, spark=spark)
    steps["prepare"] = time.time() - t
    kept = study.KeptAcrossSteps()
    injected = {"partition": {"spark": spark}, "epoch": {"spark": spark, "kept": kept}}  # as study.run
    try:
        for step in build_plan(study.run_spec(spec, state)):
            if step.kind == "prepare":
                continue  # done above
            name = step.task_id  # epoch_k; batch_b.epoch_k for TPE
            t = time.time()
            if step.kind != "epoch":
                kept.tracking.drain()  # as study.run: the other steps read or write the same MLflow runs
            fn, args = step_call(step)
            getattr(study, fn)(spec, run_id, *args, **injected.get(step.kind, {}))
            steps[name] = time.time() - t
    finally:
        kept.close()
    records = study.hop_records(spec, run_id)
    return {"spark_start_s": spark_s, "total_s": time.time() - t0, "steps_s": steps,
            "epoch_s": [v for k, v in steps.items() if k.rsplit(".", 1)[-1].startswith("epoch_")],
            "hop_span_s": _hop_spans(records)}


def _mean(xs: list) -> float | None:
    xs = [x for x in xs if x is not None]
    return round(sum(xs) / len(xs), 3) if xs else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--workload", default="demo", choices=["demo", *WORKLOADS],
                        help="demo: dags/specs/demo.yaml on the dummy data; else a workload of benchmarks/run.py")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the spec's)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the DAG run")
    parser.add_argument("--out", type=Path, default=RESULTS / "airflow_real.json")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args(argv)
    _env()
    work = Path(tempfile.mkdtemp(prefix="bench-airflow-real-"))
    try:
        spec_path = make_spec(args.workload, args.epochs, work)
        spec = yaml.safe_load(spec_path.read_text())
        epochs = spec["train"]["epochs"]
        info = machine()
        airflow = run_airflow(spec_path, work, epochs, args.timeout)
        cli = run_cli(cli_copy(spec_path, work))
        from scripts.airflow_local import WARM_EXECUTOR
        result = {
            "workload": args.workload, "epochs": epochs, "workers": spec["train"]["workers"],
            "configs": spec["search"].get("num_configs"), "machine": {**info, "loadavg_end": os.getloadavg()},
            "executor": WARM_EXECUTOR.rsplit(".", 1)[-1],  # what scripts/airflow_local.py runs the tasks with
            "airflow": airflow, "cli": cli,
            "summary": {"airflow_epoch_task_mean_s": _mean(airflow["epoch_task_s"]),
                        "airflow_epoch_task_s": airflow["epoch_task_s"],
                        "cli_epoch_mean_s": _mean(cli["epoch_s"]), "cli_epoch_s": [round(x, 3) for x in cli["epoch_s"]],
                        "airflow_gap_mean_s": _mean(airflow["gap_s"]),
                        "warm_workers": len({tuple(p) for p in airflow["worker_pids"].values()}) == 1},
        }
        s = result["summary"]
        if s["airflow_epoch_task_mean_s"] and s["cli_epoch_mean_s"]:
            s["overhead_per_epoch_s"] = round(s["airflow_epoch_task_mean_s"] - s["cli_epoch_mean_s"], 3)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps(result["summary"], indent=2))
        print(f"wrote {args.out}")
        return 0 if airflow["state"] == "success" else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
