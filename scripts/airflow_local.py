"""A local Airflow for cerebro-ops, ready to use: `make airflow-ui` (up) and `make airflow-down` (down).

`up` starts, as separate processes watched by this one:
- a Spark Connect server (unless --no-spark): every epoch task joins its one shared session, whose Python
  workers keep TensorFlow and the compiled models warm across tasks (AIRFLOW_CONN_SPARK_DEFAULT points at it);
- the Airflow api-server (bound to 127.0.0.1), scheduler (LocalExecutor whose task processes start with MLflow and
  Spark Connect's client imported: cerebro_ops/airflow/executor.py; parallelism = CPU count), dag-processor and
  triggerer.
Login: user `admin`, password in $AIRFLOW_HOME/passwords.json: random, made and shown once on the first start
(or $CEREBRO_AIRFLOW_PASSWORD). The Spark Connect server (127.0.0.1 only) takes only clients with the token in
$AIRFLOW_HOME/spark_connect_token (SPARK_CONNECT_AUTHENTICATE_TOKEN in the components' environment): another
local user cannot run code in it. The DAGs start unpaused.

Why not `airflow standalone`: its scheduler did not stop on SIGTERM/SIGINT, and Spark's Python daemon and
Airflow's task processes each start process groups of their own, so neither a process group nor the process
tree reaches everything. Every process started here carries CEREBRO_AIRFLOW_RUN=<token> in its environment
(inherited by every descendant); stopping sends SIGTERM to the component groups, waits, then SIGKILLs every
process of this user that still carries the token. Ctrl-C, SIGTERM and `down` all stop this way.
`$AIRFLOW_HOME/pids` holds the token and the pids (`down` reads it; it is removed on exit).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil

RUN_ENV = "CEREBRO_AIRFLOW_RUN"
USER = "admin"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
STOP_GRACE_S = 20.0
KEEP_WARM_S = 30.0  # below Spark's one-minute idle timeout of Python workers
TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# LocalExecutor whose task processes start with MLflow and the Spark Connect client imported (executor.py)
WARM_EXECUTOR = "cerebro_ops.airflow.executor.WarmLocalExecutor"
BIN = Path(sys.executable).parent


def airflow_home() -> Path:
    home = os.environ.get("AIRFLOW_HOME")
    if not home:
        sys.exit("AIRFLOW_HOME is not set (run through `make airflow-ui`, or export it)")
    return Path(home).resolve()


def pids_file(home: Path) -> Path:
    return home / "pids"


# ------------------------------------------------------------------------------------------ configuration
def ensure_secrets(home: Path) -> tuple[Path, str]:
    """(the passwords file, the JWT secret every component must share), written once, mode 600. The admin
    password is random (or $CEREBRO_AIRFLOW_PASSWORD) and printed once, when the file is made."""
    home.mkdir(parents=True, exist_ok=True)
    passwords = home / "passwords.json"
    if not passwords.exists():
        password = os.environ.get("CEREBRO_AIRFLOW_PASSWORD") or secrets.token_urlsafe(12)
        _write_private(passwords, json.dumps({USER: password}))
        print(f"airflow: login {USER} / {password}  (shown once; kept in {passwords}, mode 600)", flush=True)
    jwt = home / "jwt_secret"
    if not jwt.exists():
        _write_private(jwt, secrets.token_urlsafe(32))
    return passwords, jwt.read_text().strip()


def spark_connect_token(home: Path) -> str:
    """The token every Spark Connect client must present (made once, mode 600)."""
    path = home / "spark_connect_token"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def component_env(home: Path, port: int, spark_url: str | None, token: str) -> dict[str, str]:
    """The environment of every process started here. What the user already set wins, except the token,
    the bind address and the Spark connection (the point of this setup)."""
    passwords, jwt = ensure_secrets(home)
    env = dict(os.environ)
    defaults = {
        "AIRFLOW__CORE__EXECUTOR": WARM_EXECUTOR,
        "AIRFLOW__CORE__PARALLELISM": str(os.cpu_count() or 2),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt,
        "AIRFLOW__API__WORKERS": "1",  # one uvicorn worker: a local UI, on a small machine
    }
    for k, v in defaults.items():
        env.setdefault(k, v)
    env.update({
        RUN_ENV: token,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
    })
    if spark_url:
        host, sport = spark_url.rsplit(":", 1)
        env["AIRFLOW_CONN_SPARK_DEFAULT"] = json.dumps({"conn_type": "spark_connect", "host": host,
                                                        "port": int(sport)})
        # read by the server (Spark 4's spark.connect.authenticate.token) and by every pyspark client; kept
        # out of command lines, which any local user can read
        env[TOKEN_ENV] = spark_connect_token(home)
    return env


def spark_connect_command(port: int, cores: int) -> list[str]:
    """The Makefile's spark-connect server (local[cores] with task retries, sessions that never expire) on
    loopback, with the settings cerebro_ops.spark.session gives a local session (2 shuffle partitions, not
    200; Arrow; 2g driver; Python workers forked from a daemon that has imported TensorFlow; no
    DataFrame debugging, which its clients then skip too) and its quiet log4j2 configuration; the JVM maps this
    install's class archive when one was built."""
    from cerebro_ops.spark.class_archive import java_options
    from cerebro_ops.spark.session import NO_DATAFRAME_DEBUGGING, WARM_DAEMON, quiet_log4j2_file, shuffle_partitions

    confs = {"spark.connect.grpc.binding.port": port, "spark.connect.grpc.binding.address": "127.0.0.1",
             "spark.connect.session.manager.defaultSessionTimeout": -1, "spark.python.worker.reuse": "true",
             "spark.python.daemon.module": WARM_DAEMON,
             "spark.ui.enabled": "false", "spark.sql.shuffle.partitions": shuffle_partitions(f"local[{cores}]"),
             "spark.sql.execution.arrow.pyspark.enabled": "true", "spark.driver.memory": "2g",
             NO_DATAFRAME_DEBUGGING[0]: NO_DATAFRAME_DEBUGGING[1],
             "spark.driver.extraJavaOptions": " ".join(
                 [*java_options(), f"-Dlog4j2.configurationFile={quiet_log4j2_file()}"])}
    cmd = [str(BIN / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
           "--master", f"local[{cores},4]"]
    for k, v in confs.items():
        cmd += ["--conf", f"{k}={v}"]
    return cmd + ["spark-internal"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def spark_connect_server(cores: int, env: dict, log_path: Path, port: int | None = None, timeout: float = 180):
    """A Spark Connect server (spark_connect_command) on loopback for the block, for a test or a benchmark, on
    `port` or a free one: yields the port once it listens; raises with its log's tail if it exits or does not
    listen within `timeout` seconds; afterwards stops its process group (the server and its Python daemon)."""
    port = port or free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(spark_connect_command(port, cores), env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not port_open(port):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the Spark Connect server did not start: {log_path.read_text()[-2000:]}")
                time.sleep(0.2)
            yield port
        finally:
            for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
                _signal_group(server.pid, sig)
                try:
                    server.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue


def compile_bytecode() -> None:
    """Write the .pyc files of this environment's packages and of cerebro_ops when PYTHONDONTWRITEBYTECODE is
    set (common in containers): Python then never caches bytecode, and every Airflow task, a new process,
    compiled Airflow, pandas, pyspark and MLflow from source again (≈ 10 s of an epoch task measured here).
    Compiles only what is missing or stale; a read-only environment is left as it is."""
    if not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return  # Python caches bytecode itself at the first import
    import compileall
    import sysconfig

    print("airflow: PYTHONDONTWRITEBYTECODE is set; compiling the environment's bytecode once ...", flush=True)
    repo = Path(__file__).resolve().parent.parent / "cerebro_ops"
    for root in dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], str(repo)]):
        try:
            compileall.compile_dir(root, quiet=2, workers=0)
        except OSError as exc:
            print(f"airflow: could not compile {root}: {exc}", flush=True)


def component_command(name: str, port: int) -> list[str]:
    cmd = [str(BIN / "airflow"), name]
    if name == "api-server":
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
    elif name in ("scheduler", "triggerer"):
        # Their log servers bind every interface, and the api-server reads local task logs from files.
        cmd += ["--skip-serve-logs"]
    return cmd


def warm_spark(url: str, tasks: int, every: float = KEEP_WARM_S) -> None:
    """Import TensorFlow and cerebro-ops' trainer in `tasks` Python workers of the shared Connect session,
    the session every epoch task joins, then touch them every `every` s: Spark stops Python workers that
    have been idle for a minute (a fixed timeout), e.g. during a long prepare step or between DAG runs, and
    the next epoch would import TensorFlow again."""
    from cerebro_ops.core.output import worker_environment
    from cerebro_ops.spark.session import get_spark

    spark = get_spark(url)
    env = worker_environment()

    def body(batches):
        os.environ.update(env)  # as spark_entry does before TensorFlow's first import
        import cerebro_ops.keras.trainer  # noqa: F401
        yield from batches

    def touch():
        spark.range(0, tasks, 1, tasks).mapInPandas(body, schema="id long").collect()

    t0 = time.monotonic()
    touch()
    print(f"warmed {tasks} Spark Python workers in {time.monotonic() - t0:.1f} s", flush=True)
    while every > 0:
        time.sleep(every)
        try:
            touch()
        except Exception as exc:  # noqa: BLE001 - a busy or restarting server: try again next time
            print(f"keep-warm job failed: {type(exc).__name__}: {str(exc)[:200]}", flush=True)


# ------------------------------------------------------------------------------------------ processes
def token_processes(token: str) -> list[psutil.Process]:
    """Every process of this user that carries our token (started here, or by something started here)."""
    me = os.getpid()
    found = []
    for p in psutil.process_iter(["pid", "uids"]):
        if p.pid == me:
            continue
        try:
            if p.environ().get(RUN_ENV) == token:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def stop_all(token: str, groups: list[int], grace: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM the component groups and every token process, wait `grace` s, SIGKILL what is left.
    Returns the pids that had to be killed."""
    for g in groups:
        _signal_group(g, signal.SIGTERM)
    procs = token_processes(token)
    for p in procs:
        _signal(p, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    killed = []
    for _ in range(3):  # a process forked while we were stopping the others is caught on the next pass
        left = alive + [p for p in token_processes(token) if p not in alive]
        if not left:
            break
        for g in groups:
            _signal_group(g, signal.SIGKILL)
        for p in left:
            _signal(p, signal.SIGKILL)
            killed.append(p.pid)
        psutil.wait_procs(left, timeout=5)
        alive = []
    return killed


def _signal(p: psutil.Process, sig: int) -> None:
    try:
        p.send_signal(sig)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def api_healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


class Supervisor:
    """Starts the components, watches them, and stops every one of them (and their descendants) together."""

    def __init__(self, home: Path, port: int, spark_port: int | None):
        self.home, self.port, self.spark_port = home, port, spark_port
        self.token = secrets.token_hex(8)
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = False
        self.logs = home / "logs" / "components"

    def start(self, name: str, cmd: list[str], env: dict) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{name}.log", "ab")
        # A session of its own: the terminal's Ctrl-C reaches only this supervisor, which stops everything
        # in order (a scheduler that gets SIGINT straight from the terminal did not always stop).
        self.procs[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, cwd=os.getcwd())
        out.close()
        self.write_pids()

    def write_pids(self) -> None:
        # each pid with its start time: after a crash or a reboot the same pid may be another process
        lines = [f"token {self.token}", f"supervisor {os.getpid()} {_started(os.getpid())}"]
        lines += [f"{name} {p.pid} {_started(p.pid)}" for name, p in self.procs.items()]
        pids_file(self.home).write_text("\n".join(lines) + "\n")

    def wait_until(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready after {timeout:.0f} s (logs: {self.logs})")
            time.sleep(0.5)

    def check_alive(self) -> None:
        for name, p in self.procs.items():
            if name == "spark-warm-up" and p.poll() is not None:
                if p.returncode != 0:  # not fatal: the first epoch task then imports TensorFlow itself
                    print(f"airflow: the Spark warm-up failed; see {self.logs / (name + '.log')}", flush=True)
                continue
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with code {p.returncode}; see {self.logs / (name + '.log')}")

    def up(self, migrate: bool) -> int:
        # "localhost": pyspark sends a token over a plain local connection only to that name (to others: TLS)
        spark_url = f"sc://localhost:{self.spark_port}" if self.spark_port else None
        env = component_env(self.home, self.port, spark_url, self.token)
        self.write_pids()
        try:
            compile_bytecode()
            if migrate:
                print("airflow: migrating the metadata database ...", flush=True)
                res = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, check=False)
                if res.returncode != 0:
                    print(res.stdout[-3000:] + res.stderr[-3000:], file=sys.stderr)
                    return 1
            if spark_url:
                self.start("spark-connect", spark_connect_command(self.spark_port, os.cpu_count() or 2), env)
            for name in COMPONENTS:
                self.start(name, component_command(name, self.port), env)
            if spark_url:
                self.wait_until(lambda: port_open(self.spark_port), "Spark Connect server", 180)
                self.start("spark-warm-up", [sys.executable, __file__, "warm", "--spark-url", spark_url], env)
            self.wait_until(lambda: api_healthy(self.port), "Airflow api-server", 300)
            print(f"\nAirflow is ready: http://127.0.0.1:{self.port}  (user {USER}, password in "
                  f"{self.home / 'passwords.json'})", flush=True)
            if spark_url:
                print(f"Spark Connect: {spark_url} (AIRFLOW_CONN_SPARK_DEFAULT: every epoch task joins one warm "
                      "session)", flush=True)
            print(f"component logs: {self.logs}/   stop: Ctrl-C or `make airflow-down`", flush=True)
            while not self.stopping:
                self.check_alive()
                time.sleep(1)
            return 0
        except RuntimeError as exc:
            if self.stopping:
                return 0
            print(f"airflow: {exc}", file=sys.stderr)
            return 1
        finally:
            self.down()

    def on_signal(self, signum, frame) -> None:
        if self.stopping:  # a second Ctrl-C: no more waiting
            stop_all(self.token, self._groups(), grace=0)
            os._exit(130)
        self.stopping = True
        raise KeyboardInterrupt

    def _groups(self) -> list[int]:
        return [p.pid for p in self.procs.values()]  # each component leads its own group

    def down(self) -> None:
        self.stopping = True
        print("airflow: stopping " + ", ".join(self.procs) + " ...", flush=True)
        killed = stop_all(self.token, self._groups())
        if killed:
            print(f"airflow: killed {len(killed)} process(es) that did not stop on SIGTERM: {killed}", flush=True)
        pids_file(self.home).unlink(missing_ok=True)
        print("airflow: stopped", flush=True)


# ------------------------------------------------------------------------------------------ REST client
class RestClient:
    """The few REST calls the tests and benchmarks/airflow_real.py make: login, DAG, trigger, run, tasks."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.token: str | None = None

    def request(self, path: str, body: dict | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method="POST" if data else "GET")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def login(self, password: str, user: str = USER) -> str:
        self.token = self.request("/auth/token", {"username": user, "password": password})["access_token"]
        return self.token

    def dag(self, dag_id: str) -> dict:
        return self.request(f"/api/v2/dags/{dag_id}")

    def trigger(self, dag_id: str, conf: dict) -> str:
        return self.request(f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def dag_run(self, dag_id: str, run_id: str) -> dict:
        return self.request(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request(f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances")[
            "task_instances"]


def poll(what: str, fn, timeout: float, every: float = 2.0):
    """fn() until it returns something truthy (connection errors count as not yet); AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except OSError as exc:  # urllib's URLError/HTTPError are OSErrors: not up, or not parsed yet
            last = exc
        time.sleep(every)
    raise AssertionError(f"{what}: not after {timeout:.0f} s (last: {last})")


def wait_for_run(client: RestClient, dag_id: str, run_id: str, timeout: float) -> str:
    def finished():
        state = client.dag_run(dag_id, run_id)["state"]
        return state if state in ("success", "failed") else None
    return poll(f"DAG run {run_id}", finished, timeout, every=3)


# ------------------------------------------------------------------------------------------ commands
def cmd_up(args) -> int:
    home = airflow_home()
    if pids_file(home).exists():
        old = read_pids(home)
        if still_ours(old.get("supervisor")):
            print(f"airflow: already running (supervisor pid {old['supervisor'][0]}); `make airflow-down` first",
                  file=sys.stderr)
            return 1
    for port, what in ((args.port, "api-server"), (args.spark_port if not args.no_spark else None, "Spark Connect")):
        if port and port_open(port):
            print(f"airflow: port {port} ({what}) is in use; pick another (--port / --spark-port)", file=sys.stderr)
            return 1
    sup = Supervisor(home, args.port, None if args.no_spark else args.spark_port)
    signal.signal(signal.SIGTERM, sup.on_signal)
    signal.signal(signal.SIGINT, sup.on_signal)
    try:
        return sup.up(migrate=not args.no_migrate)
    except KeyboardInterrupt:
        return 0


def read_pids(home: Path) -> dict:
    """{"token": str, name: (pid, start time)} from the pids file."""
    out: dict = {}
    for line in pids_file(home).read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == "token":
            out[name] = value
        else:
            pid, _, started = value.partition(" ")
            out[name] = (int(pid), float(started or 0))
    return out


def _started(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def still_ours(pid_started: tuple[int, float] | None) -> bool:
    """The recorded process is still running: same pid and the same start time (not a reused pid)."""
    if not pid_started:
        return False
    pid, started = pid_started
    return pid > 0 and started > 0 and psutil.pid_exists(pid) and _started(pid) == started


def cmd_down(args) -> int:
    home = airflow_home()
    if not pids_file(home).exists():
        print("airflow: not running (no pids file)")
        return 0
    pids = read_pids(home)
    sup = pids.get("supervisor") if still_ours(pids.get("supervisor")) else None
    if sup:
        os.kill(sup[0], signal.SIGTERM)
        try:
            psutil.Process(sup[0]).wait(timeout=STOP_GRACE_S + 30)
        except psutil.TimeoutExpired:
            pass
        except psutil.NoSuchProcess:
            pass
    # the supervisor is gone (or stuck): stop whatever is left of its run
    # only groups whose leader is still the process we started; the token finds the rest
    groups = [v[0] for k, v in pids.items() if k not in ("token", "supervisor") and still_ours(v)]
    killed = stop_all(pids["token"], groups, grace=5) if "token" in pids else []
    if sup and still_ours(sup):
        os.kill(sup[0], signal.SIGKILL)
    pids_file(home).unlink(missing_ok=True)
    print("airflow: stopped" + (f" (killed {killed})" if killed else ""))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Airflow (and Spark Connect) and wait; Ctrl-C stops everything")
    up.add_argument("--port", type=int, default=int(os.environ.get("CEREBRO_AIRFLOW_PORT", "8080")))
    up.add_argument("--spark-port", type=int, default=int(os.environ.get("CEREBRO_SPARK_CONNECT_PORT", "15002")))
    up.add_argument("--no-spark", action="store_true", help="no Spark Connect server: each epoch task starts Spark")
    up.add_argument("--no-migrate", action="store_true", help="skip `airflow db migrate`")
    sub.add_parser("down", help="stop what `up` started")
    warm = sub.add_parser("warm", help="import TensorFlow in the Spark Connect server's Python workers")
    warm.add_argument("--spark-url", required=True)
    warm.add_argument("--tasks", type=int, default=os.cpu_count() or 2)
    warm.add_argument("--every", type=float, default=KEEP_WARM_S, help="seconds between keep-warm jobs (0: once)")
    args = parser.parse_args(argv)
    if args.command == "warm":
        warm_spark(args.spark_url, args.tasks, args.every)
        return 0
    return cmd_up(args) if args.command == "up" else cmd_down(args)


if __name__ == "__main__":
    sys.exit(main())
