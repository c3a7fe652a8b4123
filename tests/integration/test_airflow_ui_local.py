"""`make airflow-ui` for real: scripts/airflow_local.py up with a throw-away AIRFLOW_HOME, free ports and a DAGs
folder holding one small study (2 configs, 3 epochs in the spec, 2 workers). Through the REST API with the
documented login: the DAG is unpaused, a run triggered with Params epochs=2 succeeds in the real scheduler, and
its epoch tasks trained on the warm workers of the shared Spark Connect session (the same worker pids in both
epochs). The api-server listens on 127.0.0.1 only. SIGINT (Ctrl-C) stops everything: no process of the run
is left.
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
from pathlib import Path

import pytest

from scripts.airflow_local import RestClient, poll, wait_for_run

from .conftest import PY, REPO, small_spec, write_yaml

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.airflow]

NAME = "itest_ui"
SCRIPT = REPO / "scripts" / "airflow_local.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(home: Path, dags: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "CEREBRO_"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120", "PYTHONPATH": str(REPO),
                "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": PY, "PYSPARK_DRIVER_PYTHON": PY,
                "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": str(Path(PY).parent) + os.pathsep + os.environ.get("PATH", "")})
    return env


def test_airflow_ui_local_ready_warm_and_stops_clean(tmp_path):
    import psutil

    from cerebro_ops.example_data import make_example_data
    from cerebro_ops.spec import load_spec
    from cerebro_ops.store import Store

    home, dags = tmp_path / "airflow", tmp_path / "dags"
    (dags / "specs").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "cerebro_dags.py", dags / "cerebro_dags.py")
    data = make_example_data("dummy", tmp_path / "data")
    spec_path = write_yaml(dags / "specs" / f"{NAME}.yaml",
                           small_spec(NAME, data, tmp_path / "store", tmp_path / "mlflow.db", epochs=3))
    spec = load_spec(spec_path)
    port, spark_port = _free_port(), _free_port()
    client = RestClient(port)
    t0 = time.monotonic()
    out = open(tmp_path / "up.log", "w")
    proc = subprocess.Popen([PY, str(SCRIPT), "up", "--port", str(port), "--spark-port", str(spark_port)],
                            env=_env(home, dags), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    token_line = None
    try:
        poll("api-server healthy", lambda: client.request("/api/v2/monitor/health"), 300)
        token_line = (home / "pids").read_text().splitlines()[0]
        password = json.loads((home / "passwords.json").read_text())["admin"]
        assert password == "admin"  # the documented default
        with pytest.raises(urllib.error.HTTPError) as denied:
            client.login("wrong")
        assert denied.value.code in (401, 403)
        client.login(password)

        dag = poll("DAG parsed", lambda: client.dag(spec.dag_id), 300)
        assert dag["is_paused"] is False
        run_id = client.trigger(spec.dag_id, {"epochs": 2})
        # minutes on an idle machine; the timeout leaves room for a machine shared with other test runs
        state = wait_for_run(client, spec.dag_id, run_id, 1200)
        summary = {t["task_id"]: (t["state"], t.get("duration")) for t in client.task_instances(spec.dag_id, run_id)}
        assert state == "success", f"{summary}\n" + (tmp_path / "up.log").read_text()[-3000:]
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
        exposed = [(p.pid, p.name(), c.laddr) for p in _run_processes(token_line.split()[1])
                   for c in _listening(p) if not _loopback(c.laddr.ip)]
        assert exposed == [], f"listening beyond loopback: {exposed}"
        print(f"\nready+run in {time.monotonic() - t0:.0f} s; tasks: {summary}; worker pids {pids}")
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        out.close()
    assert code == 0, (tmp_path / "up.log").read_text()[-3000:]
    assert not (home / "pids").exists()
    left = [(p.pid, p.name()) for p in _run_processes(token_line.split()[1])]
    assert left == [], f"processes of the run still alive after Ctrl-C: {left}"
    assert not any(c.laddr.port in (port, spark_port) for c in psutil.net_connections("inet")
                   if c.status == psutil.CONN_LISTEN)


def _records(store, epoch: int) -> list[dict]:
    from cerebro_ops.epoch import load_records
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
