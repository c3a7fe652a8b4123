"""Real hosts on one machine: a Linux network namespace per host, joined by veth pairs to a bridge the
test creates (tests/cluster/topology.py). Each host has its own IP and port space; they share the
filesystem, which plays the role of the cluster's shared store (NFS, HDFS, S3). Nothing is routed or
NATed: traffic never leaves the bridge. Needs root (CAP_NET_ADMIN); `unsupported()` says why not.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import topology as topo
from .topology import Host

VENV_BIN = Path(sys.executable).parent


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def unsupported() -> str | None:
    """Why network namespaces cannot be used here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); run the cluster tests as root"
    probe = f"cb-probe-{os.getpid()}"
    try:
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    except FileNotFoundError:
        return "iproute2 (`ip`) is not installed"
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def host_env(host: Host, **extra: str) -> dict[str, str]:
    """The environment of a process on `host`: Spark binds and advertises the host's address only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "SPARK_"))}
    env.update(SPARK_LOCAL_IP=host.ip, SPARK_LOCAL_HOSTNAME=host.ip, PYSPARK_PYTHON=sys.executable,
               PYSPARK_DRIVER_PYTHON=sys.executable, PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]), TF_CPP_MIN_LOG_LEVEL="2")
    if "JAVA_HOME" not in env:
        java = Path("/usr/lib/jvm/java-17-openjdk-amd64")
        if java.exists():
            env["JAVA_HOME"] = str(java)
    env.update(extra)
    return env


class Hosts:
    """The bridge and one namespace per host of topology.HOSTS; processes started on them; teardown."""

    def __init__(self, logs: Path, hosts: tuple[Host, ...] = topo.HOSTS):
        self.hosts = hosts
        self.logs = logs
        self.procs: list[subprocess.Popen] = []

    # ---------------------------------------------------------------- network
    def __enter__(self) -> "Hosts":
        self.down()  # leftovers of an interrupted earlier run
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def up(self) -> None:
        _ip("link", "add", topo.BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{topo.BRIDGE_IP}/{topo.PREFIX}", "dev", topo.BRIDGE)
        _ip("link", "set", topo.BRIDGE, "up")
        for h in self.hosts:
            _ip("netns", "add", h.netns)
            _ip("link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns)
            _ip("link", "set", h.veth, "master", topo.BRIDGE, "up")
            self.ip(h, "addr", "add", f"{h.ip}/{topo.PREFIX}", "dev", "eth0")
            self.ip(h, "link", "set", "eth0", "up")
            self.ip(h, "link", "set", "lo", "up")

    def down(self) -> None:
        """Kill every process still in a host, then remove the namespaces and the bridge (idempotent)."""
        for h in self.hosts:
            self.kill_host(h)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass
        for h in self.hosts:
            _ip("netns", "del", h.netns, check=False)
            _ip("link", "del", h.veth, check=False)
        _ip("link", "del", topo.BRIDGE, check=False)

    def ip(self, host: Host, *args: str) -> subprocess.CompletedProcess:
        return _ip("-n", host.netns, *args)

    # ---------------------------------------------------------------- processes
    def spawn(self, host: Host, argv: list[str], name: str, env: dict | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
        """Start argv inside `host`; output goes to logs/<name>.log."""
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(["ip", "netns", "exec", host.netns, *argv], env=env or host_env(host),
                                cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def run(self, host: Host, argv: list[str], env: dict | None = None, cwd: Path | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", host.netns, *argv], env=env or host_env(host), cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)

    def pids(self, host: Host) -> list[int]:
        out = _ip("netns", "pids", host.netns, check=False)
        return [int(p) for p in out.stdout.split()] if out.returncode == 0 else []

    def kill_host(self, host: Host) -> list[int]:
        """SIGKILL every process in the host's namespace (a power cut of that machine): every process there
        was started by these tests. Returns the pids killed."""
        killed = []
        for _ in range(5):  # processes forked while we kill
            pids = self.pids(host)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        return killed

    def wait_port(self, host: Host, port: int, timeout: float = 120) -> None:
        """Until something listens on host:port (asked from the operator's side of the bridge)."""
        import socket
        deadline = time.time() + timeout
        while time.time() < deadline:
            with socket.socket() as s:
                s.settimeout(1)
                if s.connect_ex((host.ip, port)) == 0:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"nothing listens on {host.name} {host.ip}:{port} after {timeout:.0f} s; logs in {self.logs}")
