"""Real faults in real processes (CLI + local Spark), small: 2 configs, 2 workers, 2 epochs of dummy data.

- reference run: a Spark worker process exits mid-hop once (CEREBRO_FAULT_WORKER_EXIT=1:1); Spark retries
  the task (local[N] runs as local[N,4]) and the epoch completes;
- crashed run: the driver is SIGKILLed after its 6th hop record (CEREBRO_FAULT_KILL_AFTER_HOPS=6, mid
  epoch 2), then `run --run-id R --resume` finishes it without redoing a recorded hop, and ends with the
  same metrics as the reference run (deterministic mode, same seed).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cerebro_ops.example_data import make_example_data

pytestmark = [pytest.mark.slow, pytest.mark.spark]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crash")
    data = make_example_data("dummy", tmp / "data")
    spec = {
        "name": "crash", "seed": 3,
        "data": {"source": str(data), "label": "label", "task": "binary", "numeric": ["x1", "x2", "x3", "x4"],
                 "categorical": ["color"]},
        "model": {"builder": "cerebro_ops.builders:mlp"},
        "search": {"method": "grid", "space": {"hidden_units": [8, 16], "learning_rate": [0.01],
                                               "batch_size": [128]}},
        "train": {"epochs": 2, "workers": 2, "metric": "val_accuracy"},
        "runtime": {"spark_master": "local[2]", "store": (tmp / "store").as_uri(),
                    "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"},
    }
    path = tmp / "crash.yaml"
    path.write_text(yaml.safe_dump(spec))
    return tmp, path


def cli(spec, *args, env=None, timeout=600):
    e = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, **(env or {})}
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "cerebro_ops.cli", "run", str(spec), *args], cwd=REPO, env=e,
                       capture_output=True, text=True, timeout=timeout)
    return p, time.time() - t0


def run_dir(tmp, run_id):
    return tmp / "store" / "crash" / "runs" / run_id


def hop_records(tmp, run_id):
    return {p.relative_to(run_dir(tmp, run_id)).as_posix(): json.loads(p.read_text())
            for p in (run_dir(tmp, run_id) / "hops").glob("e*/*.json")}


def leaderboard(tmp, run_id):
    return {r["model_id"]: r for r in json.loads((run_dir(tmp, run_id) / "leaderboard.json").read_text())}


@pytest.fixture(scope="module")
def reference(setup):
    tmp, spec = setup
    p, wall = cli(spec, "--run-id", "ref", env={"CEREBRO_FAULT_WORKER_EXIT": "1:1"})
    assert p.returncode == 0, p.stderr[-3000:]
    print(f"reference run (with a worker death): {wall:.1f} s")
    return leaderboard(tmp, "ref")


def test_worker_death_mid_hop_is_retried_by_spark(setup, reference):
    tmp, _ = setup
    assert (run_dir(tmp, "ref") / "faults" / "worker-exit-1-1").exists(), "the fault was not injected"
    assert {r["status"] for r in reference.values()} == {"FINISHED"}
    assert all(r["epochs"] == 2 for r in reference.values())
    recs = hop_records(tmp, "ref")
    # models x (W train hops + W - 1 validation links) x epochs, each once
    assert len(recs) == 2 * (2 + 1) * 2
    assert sum(r["kind"] == "eval" for r in recs.values()) == 2 * 1 * 2


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(setup, reference):
    tmp, spec = setup
    p, wall1 = cli(spec, "--run-id", "r1", env={"CEREBRO_FAULT_KILL_AFTER_HOPS": "9"})
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-3000:])
    before = hop_records(tmp, "r1")
    assert len(before) == 9  # epoch 1's 6 units and half of epoch 2's
    state = json.loads((run_dir(tmp, "r1") / "state.json").read_text())
    assert state["epochs_done"] == 1  # killed in the middle of epoch 2

    p, wall2 = cli(spec, "--run-id", "r1", "--resume")
    assert p.returncode == 0, p.stderr[-3000:]
    after = hop_records(tmp, "r1")
    assert len(after) == 12
    for name, rec in before.items():  # completed hops were not redone
        assert after[name]["start"] == rec["start"] and after[name].get("pid") == rec.get("pid"), name
    got = leaderboard(tmp, "r1")
    for m, ref in reference.items():
        assert got[m]["status"] == "FINISHED"
        assert got[m]["val_accuracy"] == pytest.approx(ref["val_accuracy"], abs=1e-6)
    hist = {m: h for m, h in state["history"].items()}
    final = json.loads((run_dir(tmp, "r1") / "state.json").read_text())["history"]
    ref_state = json.loads((run_dir(tmp, "ref") / "state.json").read_text())["history"]
    for m in final:
        assert final[m][0] == hist[m][0]  # epoch 1 as recorded before the crash
        for a, b in zip(final[m], ref_state[m]):
            for k in ("train_loss", "val_loss", "val_accuracy"):
                assert a[k] == pytest.approx(b[k], abs=1e-6), (m, k)
    print(f"killed run {wall1:.1f} s, resume {wall2:.1f} s")
