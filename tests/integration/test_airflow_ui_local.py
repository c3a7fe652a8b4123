"""The README's first commands for real, in a throw-away checkout (the repository's Makefile, scripts and
plugins linked into a temporary folder; cwd, Airflow home, store and MLflow database all in it): `make demo`,
then `make airflow-ui` on free ports, then Ctrl-C. Its DAGs folder holds the demo spec (made 2 configs x 2
epochs to keep this short) and one more small study (2 configs, 3 epochs in the spec, 2 workers).
Through the REST API with the documented login:
- the demo DAG, created by `make demo`'s `airflow dags test`, is unpaused: a run triggered with the form's
  defaults succeeds in the real scheduler, and MLflow has the demo's champion, which that run's register
  step judged;
- a run of the other study triggered with Params epochs=2 succeeds, and its epoch tasks trained on the warm
  workers of the shared Spark Connect session (the same worker pids in both epochs);
- the api-server listens on 127.0.0.1 only; Ctrl-C stops everything: no process of the run is left.
One Airflow serves the module's tests (started by the `readme` fixture; the last test stops it).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from scripts.airflow_local import RestClient, poll, wait_for_run

from .conftest import PY, REPO, small_spec, write_yaml

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.airflow]

NAME = "itest_ui"
DEMO_DAG = "cerebro_demo"
VENV = Path(PY).parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_env() -> dict:
    """This shell's environment without what the Makefile sets itself (and a parent make's flags)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "MLFLOW_", "CEREBRO_", "SPARK_", "PYSPARK_", "MAKE", "MFLAGS"))
            and k != "PYTHONPATH"}


def _make(root: Path, *args: str) -> list[str]:
    # this venv, never (re)installed by the test
    return ["make", "-C", str(root), f"VENV={VENV}", "-o", str(VENV / ".installed"), *args]


@dataclass
class LocalAirflow:
    root: Path
    port: int
    spark_port: int
    proc: subprocess.Popen
    log: Path
    client: RestClient
    token: str
    ready_s: float

    @property
    def home(self) -> Path:
        return self.root / ".cerebro" / "airflow"

    def stop(self) -> int:
        """Ctrl-C in the terminal: SIGINT to make and the supervisor (one process group)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
                raise
        return self.proc.returncode


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    """`make demo`, then `make airflow-ui` (started, healthy, logged in), in a throw-away checkout."""
    root = tmp_path_factory.mktemp("checkout")
    for name in ("Makefile", "requirements.txt", "pyproject.toml", "scripts", "plugins"):
        (root / name).symlink_to(REPO / name)
    dags = root / "dags"
    (dags / "specs").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "cerebro_dags.py", dags / "cerebro_dags.py")
    demo = yaml.safe_load((REPO / "dags" / "specs" / "demo.yaml").read_text())
    demo["search"]["num_configs"], demo["train"]["epochs"] = 2, 2
    write_yaml(dags / "specs" / "demo.yaml", demo)
    data = root / "itest-data"
    from cerebro_ops.example_data import make_example_data
    source = make_example_data("dummy", data)
    write_yaml(dags / "specs" / f"{NAME}.yaml", small_spec(NAME, source, data / "store", data / "mlflow.db", epochs=3))

    t0 = time.monotonic()
    demo_out = subprocess.run(_make(root, "demo"), env=_make_env(), capture_output=True, text=True, timeout=1200)
    assert demo_out.returncode == 0, demo_out.stdout[-3000:] + demo_out.stderr[-3000:]
    print(f"\nmake demo: {time.monotonic() - t0:.0f} s")

    port, spark_port = _free_port(), _free_port()
    log = root / "airflow-ui.log"
    t0 = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(_make(root, "airflow-ui", f"AIRFLOW_UI_ARGS=--port {port} --spark-port {spark_port}"),
                                env=_make_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    airflow = LocalAirflow(root, port, spark_port, proc, log, RestClient(port), "", 0.0)
    try:
        def healthy():
            if proc.poll() is not None:
                raise AssertionError(f"make airflow-ui exited ({proc.returncode}): " + log.read_text()[-3000:])
            return airflow.client.request("/api/v2/monitor/health")
        poll("api-server healthy", healthy, 300)
        airflow.token = (airflow.home / "pids").read_text().splitlines()[0].split()[1]
        airflow.ready_s = time.monotonic() - t0
        yield airflow
    finally:
        airflow.stop()


def test_airflow_ui_local_ready_warm_and_loopback_only(readme):
    import psutil

    from cerebro_ops.core.spec import load_spec
    from cerebro_ops.store import Store

    spec = load_spec(readme.root / "dags" / "specs" / f"{NAME}.yaml")
    client, home, port = readme.client, readme.home, readme.port
    password = json.loads((home / "passwords.json").read_text())["admin"]
    assert password != "admin" and len(password) >= 16  # random, made on the first start
    with pytest.raises(urllib.error.HTTPError) as denied:
        RestClient(port).login("wrong")
    assert denied.value.code in (401, 403)
    client.login(password)

    t0 = time.monotonic()
    dag = poll("DAG parsed", lambda: client.dag(spec.dag_id), 300)
    assert dag["is_paused"] is False
    run_id = client.trigger(spec.dag_id, {"epochs": 2})
    # minutes on an idle machine; the timeout leaves room for a machine shared with other test runs
    state = wait_for_run(client, spec.dag_id, run_id, 1200)
    summary = {t["task_id"]: (t["state"], t.get("duration")) for t in client.task_instances(spec.dag_id, run_id)}
    assert state == "success", f"{summary}\n" + readme.log.read_text()[-3000:]
    assert summary["epoch_3"][0] == "skipped" and summary["register"][0] == "success", summary

    # warm Spark: both epoch tasks ran on the same Python worker processes of the shared session
    runs = Store(spec.runtime.store).sub(spec.name, "runs")
    assert len(runs.listdir()) == 1
    run_store = runs.sub(runs.listdir()[0])
    # (which warm process serves which partition is Spark's choice; the processes are the same)
    pids = {e: {r["pid"] for r in _records(run_store, e)} for e in (1, 2)}
    assert len(pids[1]) == 2 and pids[1] == pids[2], pids

    # the api-server listens on loopback only, and so does every other process of the run
    listening = [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN
                 and c.laddr.port == port]
    assert listening and {c.laddr.ip for c in listening} == {"127.0.0.1"}, listening
    exposed = [(p.pid, p.name(), c.laddr) for p in _run_processes(readme.token)
               for c in _listening(p) if not _loopback(c.laddr.ip)]
    assert exposed == [], f"listening beyond loopback: {exposed}"
    print(f"\nready in {readme.ready_s:.0f} s, run in {time.monotonic() - t0:.0f} s; tasks: {summary}; "
          f"worker pids {pids}")


def test_readme_demo_then_airflow_ui_then_trigger_succeeds(readme):
    """After `make demo` and `make airflow-ui`, Trigger with the form's defaults: the run does not wait
    queued behind a paused DAG, it succeeds, and MLflow has the demo's champion."""
    from mlflow import MlflowClient

    from cerebro_ops.mlflow.tracking import CHAMPION_ALIAS, RUN_ID_TAG

    client = readme.client
    client.login(json.loads((readme.home / "passwords.json").read_text())["admin"])
    dag = poll("demo DAG parsed", lambda: client.dag(DEMO_DAG), 300)
    assert dag["is_paused"] is False, "make demo left the demo DAG paused: a triggered run would sit queued"
    t0 = time.monotonic()
    run_id = client.trigger(DEMO_DAG, {})
    poll("the run leaves the queue", lambda: client.dag_run(DEMO_DAG, run_id)["state"] != "queued", 300)
    state = wait_for_run(client, DEMO_DAG, run_id, 1200)
    summary = {t["task_id"]: t["state"] for t in client.task_instances(DEMO_DAG, run_id)}
    assert state == "success", f"{summary}\n" + readme.log.read_text()[-3000:]

    db = f"sqlite:///{readme.root / '.cerebro' / 'mlflow.db'}"
    registry = MlflowClient(tracking_uri=db, registry_uri=db)
    champion = registry.get_model_version_by_alias("demo", CHAMPION_ALIAS)
    runs = registry.search_runs([e.experiment_id for e in registry.search_experiments()],
                                f"tags.`{RUN_ID_TAG}` = '{run_id}'")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]  # the children carry the tag too
    # the register step of this run judged against the champion and recorded which version it is
    assert parent.data.tags.get("cerebro.champion.version") == str(champion.version), parent.data.tags
    print(f"\ndemo run (default params) in {time.monotonic() - t0:.0f} s; champion v{champion.version}: "
          f"{parent.data.tags.get('cerebro.champion.decision')}")


def test_ctrl_c_stops_every_process(readme):
    import psutil

    readme.stop()
    text = readme.log.read_text()
    assert "airflow: stopped" in text, text[-3000:]
    assert not (readme.home / "pids").exists()
    left = [(p.pid, p.name()) for p in _run_processes(readme.token)]
    assert left == [], f"processes of the run still alive after Ctrl-C: {left}"
    assert not any(c.laddr.port in (readme.port, readme.spark_port) for c in psutil.net_connections("inet")
                   if c.status == psutil.CONN_LISTEN)


def _records(store, epoch: int) -> list[dict]:
    from cerebro_ops.mop.epoch import load_records
    return [r for r in load_records(store, epoch) if r.get("status") == "ok"]


def _run_processes(token: str) -> list:
    """Every live process started by the run (they all carry its token in their environment)."""
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and p.environ().get("CEREBRO_AIRFLOW_RUN") == token:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def _listening(p) -> list:
    import psutil

    try:
        return [c for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def _loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    mapped = getattr(addr, "ipv4_mapped", None)  # a JVM's IPv6 socket on 127.0.0.1 shows as ::ffff:127.0.0.1
    return (mapped or addr).is_loopback
