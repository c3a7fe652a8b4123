"""The production services, started for real on the driver host (tests/cluster/topology.py): a throwaway
PostgreSQL cluster (one database for Airflow, one for MLflow), an MLflow tracking server that proxies
artifacts, and Airflow 3 as separate processes (api-server, scheduler, dag-processor, triggerer) with the
LocalExecutor. Each is a process in the driver host's network namespace; the Hosts teardown kills them.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import topology as topo
from .netns import Hosts, host_env

def _pg_bin() -> Path:
    """The newest PostgreSQL server installed by the Debian package (/usr/lib/postgresql/<major>/bin)."""
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    return max(found, key=lambda p: int(p.parent.name)) if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()
PG_OS_USER = "postgres"  # initdb refuses to run as root


def unsupported() -> str | None:
    if not (PG_BIN / "initdb").exists():
        return f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql)"
    try:
        import pwd
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        return f"no {PG_OS_USER!r} OS user to run PostgreSQL as"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "psycopg2 is not installed (requirements.txt: psycopg2-binary)"
    return None


def http_json(url: str, data: dict | None = None, token: str | None = None, method: str | None = None,
              timeout: float = 30) -> dict:
    req = urllib.request.Request(url, data=json.dumps(data).encode() if data is not None else None,
                                 method=method or ("POST" if data is not None else "GET"))
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"{}")


def wait_http(url: str, timeout: float = 180, what: str = "", proc=None) -> None:
    """Until url answers; fails at once if `proc` (the server) exited."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what or url} exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status < 500:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(1)
    raise TimeoutError(f"{what or url} did not answer in {timeout:.0f} s: {last}")


class Postgres:
    """initdb in a temp dir as the postgres OS user, listening on the driver's IP; password logins from
    the hosts' subnet only."""

    def __init__(self, hosts: Hosts, root: Path):
        self.hosts, self.data, self.socket_dir = hosts, root / "pgdata", root / "pgsock"
        self.log = root / "pglog" / "postgres.log"  # written by the postgres user

    def _as_pg(self, *argv: str) -> list[str]:
        return ["runuser", "-u", PG_OS_USER, "--", *argv]

    def start(self) -> None:
        import pwd
        pw = pwd.getpwnam(PG_OS_USER)
        for d in (self.data, self.socket_dir, self.log.parent):
            d.mkdir(parents=True)
            os.chown(d, pw.pw_uid, pw.pw_gid)
        self.data.chmod(0o700)
        init = self.hosts.run(topo.DRIVER, self._as_pg(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                                       "--auth-local=trust", "--auth-host=scram-sha-256"), timeout=300)
        assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-2000:]
        with open(self.data / "pg_hba.conf", "a") as f:
            f.write(f"host all all {topo.SUBNET} scram-sha-256\n")
        opts = f"-h {topo.DRIVER.ip} -p {topo.POSTGRES_PORT} -k {self.socket_dir}"
        start = self.hosts.run(topo.DRIVER, self._as_pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts,
                                                        "-l", str(self.log), "-w", "start"),
                               timeout=120)
        assert start.returncode == 0, start.stdout[-2000:] + start.stderr[-2000:]
        self.psql(f"CREATE ROLE {topo.PG_USER} LOGIN PASSWORD '{topo.PG_PASSWORD}'")
        for db in (topo.AIRFLOW_DB, topo.MLFLOW_DB):
            self.psql(f"CREATE DATABASE {db} OWNER {topo.PG_USER}")

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = self.hosts.run(topo.DRIVER, self._as_pg(str(PG_BIN / "psql"), "-h", str(self.socket_dir), "-p",
                                                      str(topo.POSTGRES_PORT), "-U", "postgres", "-d", db, "-tA",
                                                      "-c", sql))
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    def stop(self) -> None:
        self.hosts.run(topo.DRIVER, self._as_pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                                "stop"), timeout=60)


class MlflowServer:
    def __init__(self, hosts: Hosts, root: Path):
        self.hosts, self.artifacts = hosts, root / "mlflow-artifacts"
        self.url = topo.mlflow_url()

    def spawn(self) -> None:
        """Start the server (it creates its tables first: wait() for it while doing something else)."""
        self.artifacts.mkdir(parents=True)
        argv = topo.mlflow_command(topo.DRIVER.ip, topo.postgres_url(topo.MLFLOW_DB, driver="psycopg2"),
                                   str(self.artifacts), topo.DRIVER.ip)
        self.proc = self.hosts.spawn(topo.DRIVER, argv, "mlflow-server", env=host_env(topo.DRIVER))

    def wait(self) -> None:
        wait_http(f"{self.url}/health", timeout=300, what=f"the MLflow server (log in {self.hosts.logs})",
                  proc=self.proc)


class Airflow:
    """Airflow 3 on PostgreSQL, LocalExecutor, its components as separate processes on the driver host."""

    USER = "admin"

    def __init__(self, hosts: Hosts, root: Path, dags: Path, extra_env: dict[str, str]):
        self.hosts, self.home, self.dags = hosts, root / "airflow-home", dags
        self.password = secrets.token_urlsafe(12)
        self.url = topo.airflow_api_url()
        self.env = host_env(topo.DRIVER, **extra_env)
        self.env.update(topo.airflow_env(topo.postgres_url(topo.AIRFLOW_DB, driver="psycopg2"), topo.DRIVER.ip,
                                         topo.spark_master_url(), topo.mlflow_url(), secrets.token_hex(32)))
        self.env.update({
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(root / "airflow-passwords.json"),
            "AIRFLOW__API__HOST": topo.DRIVER.ip,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        })
        (root / "airflow-passwords.json").write_text(json.dumps({self.USER: self.password}))

    def start(self) -> None:
        self.home.mkdir(parents=True)
        migrate = self.hosts.run(topo.DRIVER, ["airflow", "db", "migrate"], env=self.env, timeout=900)
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        procs = {c: self.hosts.spawn(topo.DRIVER, topo.airflow_command(c), f"airflow-{c}", env=self.env, cwd=self.home)
                 for c in topo.AIRFLOW_COMPONENTS}
        wait_http(f"{self.url}/api/v2/monitor/health", timeout=300,
                  what=f"the Airflow api-server (log in {self.hosts.logs})", proc=procs["api-server"])

    def token(self) -> str:
        return http_json(f"{self.url}/auth/token", {"username": self.USER, "password": self.password})["access_token"]

    def wait_dag(self, dag_id: str, token: str, timeout: float = 300) -> dict:
        """Until the dag-processor has parsed the DAG into the database."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                return http_json(f"{self.url}/api/v2/dags/{dag_id}", token=token)
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            time.sleep(2)
        raise TimeoutError(f"DAG {dag_id} not parsed in {timeout:.0f} s; logs in {self.hosts.logs}")

    def trigger(self, dag_id: str, token: str, conf: dict | None = None) -> str:
        run = http_json(f"{self.url}/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}},
                        token=token)
        return run["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, token: str, timeout: float = 1200) -> dict:
        deadline = time.time() + timeout
        quoted = urllib.request.quote(run_id, safe="")
        while time.time() < deadline:
            run = http_json(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{quoted}", token=token)
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise TimeoutError(f"DAG run {run_id} not finished in {timeout:.0f} s")

    def task_states(self, dag_id: str, run_id: str, token: str) -> dict[str, str]:
        quoted = urllib.request.quote(run_id, safe="")
        out = http_json(f"{self.url}/api/v2/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100", token=token)
        return {t["task_id"]: t["state"] for t in out["task_instances"]}


def copy_dag_factory(repo: Path, dags: Path, spec_text: str, spec_name: str) -> Path:
    """A DAGs folder like dags/: the factory file beside a specs/ folder holding one spec."""
    (dags / "specs").mkdir(parents=True)
    shutil.copy(repo / "dags" / "cerebro_dags.py", dags / "cerebro_dags.py")
    spec = dags / "specs" / f"{spec_name}.yaml"
    spec.write_text(spec_text)
    return spec
