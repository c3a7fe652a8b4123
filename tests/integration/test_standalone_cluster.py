"""A study on a Spark standalone cluster: a master and two workers started on localhost from the pip
pyspark. Driver and executors are separate JVMs and Python workers; the store is all they share."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import check_hop_invariants, small_spec, write_yaml

pytestmark = [pytest.mark.slow, pytest.mark.spark]

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "SPARK_WORKER_DIR": str(tmp_path_factory.mktemp("spark-work")), "SPARK_NO_DAEMONIZE": "1"}
    port = _free_port()
    logs = tmp_path_factory.mktemp("spark-logs")
    procs = [subprocess.Popen([str(BIN / "spark-class"), "org.apache.spark.deploy.master.Master", "--host",
                               "127.0.0.1", "--port", str(port), "--webui-port", str(_free_port())],
                              env=env, stdout=open(logs / "master.log", "w"), stderr=subprocess.STDOUT)]
    try:
        _wait_port(port)
        for i in range(2):
            procs.append(subprocess.Popen(
                [str(BIN / "spark-class"), "org.apache.spark.deploy.worker.Worker", "--cores", "1", "--memory",
                 "2g", "--webui-port", str(_free_port()), f"spark://127.0.0.1:{port}"],
                env=env, stdout=open(logs / f"worker{i}.log", "w"), stderr=subprocess.STDOUT))
        deadline = time.time() + 90
        while time.time() < deadline and (logs / "master.log").read_text().count("Registering worker") < 2:
            time.sleep(0.5)
        assert (logs / "master.log").read_text().count("Registering worker") == 2, "workers did not register"
        yield f"spark://127.0.0.1:{port}"
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_study_runs_on_standalone_cluster(cluster, tmp_path):
    from cerebro_ops import study
    from cerebro_ops.example_data import make_example_data
    from cerebro_ops.core.spec import load_spec

    data = make_example_data("dummy", tmp_path / "data")
    raw = small_spec("cluster", data, tmp_path / "store", tmp_path / "mlflow.db", epochs=1)
    raw["runtime"]["spark_master"] = cluster
    spec = load_spec(write_yaml(tmp_path / "cluster.yaml", raw))
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    # a separate driver process: this test process may already hold a local Spark session
    code = ("import sys; from cerebro_ops import study; from cerebro_ops.core.spec import load_spec; "
            f"r = study.run(load_spec({str(tmp_path / 'cluster.yaml')!r}), run_id='c1'); "
            "print('RESULT', r['leaderboard'][0]['model_id'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "RESULT m00" in out.stdout
    state = study.load_state(spec, "c1")
    assert state["epochs_done"] == 1 and state["registered"]["version"]
    records = study.hop_records(spec, "c1")
    check_hop_invariants(records, sorted(state["configs"]), workers=2, epochs=1)
    # the two partitions were served by executor processes, not by the driver
    pids = {r["pid"] for r in records if r["status"] == "ok"}
    assert len(pids) >= 2
