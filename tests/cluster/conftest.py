"""Fixtures of the cluster tests: the hosts (network namespaces), a Spark standalone cluster on them, the
dummy data, and the reference leaderboard of the same study on local[2].

All of tests/cluster/ but test_compose.py needs root and `ip netns`; without them those tests skip and say
why. The hosts and the Spark cluster are started once per session and shared by the test files.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from . import topology as topo
from .netns import Hosts, host_env, unsupported

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
STUDY = "cluster_study"  # one study, one seed: every setup must reach the same leaderboard
CONFIGS, EPOCHS = 2, 2


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: runs on real hosts (network namespaces) or real services")


@pytest.fixture(scope="session")
def cluster_tmp() -> Path:
    """A world-readable scratch folder: the hosts' shared filesystem (PostgreSQL runs as another user)."""
    path = Path(tempfile.mkdtemp(prefix="cerebro-cluster-"))
    path.chmod(0o755)
    yield path
    if os.environ.get("CEREBRO_CLUSTER_KEEP"):  # for a post-mortem: logs, stores, hop records
        print(f"cluster test files kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def hosts(cluster_tmp) -> Hosts:
    reason = unsupported()
    if reason:
        pytest.skip(f"cluster tests need network namespaces: {reason}")
    logs = cluster_tmp / "logs"
    logs.mkdir()
    with Hosts(logs) as h:
        yield h


@dataclass
class SparkCluster:
    hosts: Hosts
    master: str
    conf_dir: Path
    work: Path

    def start_worker(self, host: topo.Host, tag: str = "") -> None:
        env = host_env(host, SPARK_WORKER_DIR=str(self.work / host.name), SPARK_NO_DAEMONIZE="1")
        self.hosts.spawn(host, topo.worker_command(host.ip), f"spark-worker-{host.name}{tag}", env=env)

    def registered(self) -> int:
        return (self.hosts.logs / "spark-master.log").read_text(errors="replace").count("Registering worker")

    def wait_registered(self, n: int, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline and self.registered() < n:
            time.sleep(0.5)
        assert self.registered() >= n, f"{n} worker registrations expected; logs in {self.hosts.logs}"

    def driver_env(self, **extra: str) -> dict[str, str]:
        """A Spark driver on the driver host: its hop server is reached by the workers at the driver's IP."""
        return host_env(topo.DRIVER, CEREBRO_DRIVER_HOST=topo.DRIVER.ip, SPARK_CONF_DIR=str(self.conf_dir), **extra)


@pytest.fixture(scope="session")
def spark_cluster(hosts, cluster_tmp) -> SparkCluster:
    """A Spark standalone master on the driver host and one worker per worker host."""
    conf = cluster_tmp / "spark-conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in topo.SPARK_DEFAULTS.items()))
    cluster = SparkCluster(hosts, topo.spark_master_url(), conf, cluster_tmp / "spark-work")
    hosts.spawn(topo.DRIVER, topo.master_command(topo.DRIVER.ip), "spark-master",
                env=host_env(topo.DRIVER, SPARK_NO_DAEMONIZE="1"))
    hosts.wait_port(topo.DRIVER, topo.SPARK_MASTER_PORT)
    for w in topo.WORKERS:
        cluster.start_worker(w)
    cluster.wait_registered(len(topo.WORKERS))
    return cluster


@pytest.fixture(scope="session")
def dummy_data(hosts, cluster_tmp) -> Path:
    out = hosts.run(topo.DRIVER, [PY, "-m", "cerebro_ops.cli", "make-data", "dummy", "--out", str(cluster_tmp / "data")],
                    cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return Path(out.stdout.strip().splitlines()[-1])


def study_spec(path: Path, data: Path, store: Path, master: str, tracking: str) -> Path:
    """dags/specs/demo.yaml as a 2 configs x 2 epochs x 2 workers study named STUDY, deterministic."""
    raw = yaml.safe_load((REPO / "dags" / "specs" / "demo.yaml").read_text())
    raw["name"] = STUDY
    raw["data"]["source"] = str(data)
    raw["search"].update(method="random", num_configs=CONFIGS)
    raw["train"].update(epochs=EPOCHS, workers=topo.STUDY_WORKERS, deterministic=True)
    from cerebro_ops.core import spec as spec_module
    if "hop_order" in getattr(spec_module, "_TRAIN_KEYS", ()):
        # visit orders from the seed alone: a cost-aware order follows measured hop times, which differ
        # between a laptop and a cluster
        raw["train"]["hop_order"] = "fixed"
    raw["runtime"] = {"spark_master": master, "store": store.resolve().as_uri(), "tracking_uri": tracking}
    if "connect_timeout_s" in getattr(spec_module, "_RUNTIME_KEYS", ()):
        raw["runtime"]["connect_timeout_s"] = 300  # executors start slowly on a busy 2-CPU machine
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_cli(hosts: Hosts | None, env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`cerebro-ops <args>` on the driver host (or on this machine's loopback when hosts is None)."""
    argv = [PY, "-m", "cerebro_ops.cli", *args]
    if hosts is None:
        return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    return hosts.run(topo.DRIVER, argv, env=env, cwd=REPO, timeout=timeout)


def fingerprint(spec_path: Path, run_id: str) -> dict[str, dict]:
    """Per model: its params, status, and every epoch's metrics (what the leaderboard is ranked from)."""
    from cerebro_ops import study
    from cerebro_ops.core.leaderboard import leaderboard_rows
    from cerebro_ops.core.spec import load_spec

    spec = load_spec(spec_path)
    state = study.load_run(spec, run_id)
    rows = leaderboard_rows(state, spec.train.metric, spec.train.direction)
    return {r["model_id"]: {"rank": r["rank"], "status": str(r["status"]), "params": r["params"],
                            "history": [{"epoch": h.epoch, **h.metrics} for h in state.models[r["model_id"]].history]}
            for r in rows}


def assert_same_leaderboard(got: dict, want: dict, tol: float = 1e-6) -> None:
    assert sorted(got) == sorted(want), f"models {sorted(got)} != {sorted(want)}"
    for m, w in want.items():
        g = got[m]
        assert (g["rank"], g["status"], g["params"]) == (w["rank"], w["status"], w["params"]), (m, g, w)
        assert len(g["history"]) == len(w["history"]) == EPOCHS, (m, g["history"], w["history"])
        for ge, we in zip(g["history"], w["history"]):
            assert set(ge) == set(we), (m, ge, we)
            for k, v in we.items():
                if isinstance(v, float):
                    assert math.isclose(ge[k], v, rel_tol=0, abs_tol=tol), f"{m} epoch {we['epoch']} {k}: {ge[k]} != {v}"
                else:
                    assert ge[k] == v, (m, k, ge[k], v)


def hop_records(store: Path, run_id: str, epoch: int | None = None) -> list[dict]:
    """The run's hop records so far (also while it runs), from its folder in a local store."""
    from cerebro_ops.store import safe_run_id

    root = store / STUDY / "runs" / safe_run_id(run_id) / "hops"  # an Airflow run id has ':' and '+'
    files = sorted((root / f"e{epoch}").rglob("*.json") if epoch else root.glob("e*/**/*.json"))
    out = []
    for f in files:
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, ValueError):  # written right now (atomically, but listed before the rename)
            pass
    return out


@pytest.fixture(scope="session")
def local_reference(cluster_tmp, dummy_data) -> dict:
    """The study on local[2] on this machine's loopback: the leaderboard every other setup must reach."""
    tmp = cluster_tmp / "local"
    spec = study_spec(tmp / "spec.yaml", dummy_data, tmp / "store", "local[2]", f"sqlite:///{tmp / 'mlflow.db'}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "SPARK_"))}
    env.update(SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=PY, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    t0 = time.time()
    out = run_cli(None, env, "run", str(spec), "--run-id", "local")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    print(f"local[2] run: {time.time() - t0:.0f} s")
    return fingerprint(spec, "local")


@pytest.fixture(scope="session")
def netns_run(hosts, spark_cluster, dummy_data, cluster_tmp) -> tuple[Path, Path, dict]:
    """The study run fault-free by the CLI on the driver host against the standalone cluster:
    (spec path, store folder, leaderboard fingerprint)."""
    tmp = cluster_tmp / "netns-clean"
    spec = study_spec(tmp / "spec.yaml", dummy_data, tmp / "store", spark_cluster.master, f"sqlite:///{tmp / 'mlflow.db'}")
    t0 = time.time()
    out = run_cli(hosts, spark_cluster.driver_env(), "run", str(spec), "--run-id", "clean")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    print(f"netns CLI run: {time.time() - t0:.0f} s")
    return spec, tmp / "store", fingerprint(spec, "clean")
