"""The local stack has no known password and no open Spark Connect server: a random admin password shown
once, and a token every Spark Connect client must present."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from scripts import airflow_local


def test_the_admin_password_is_random_private_and_shown_once(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CEREBRO_AIRFLOW_PASSWORD", raising=False)
    passwords, jwt = airflow_local.ensure_secrets(tmp_path / "a")
    password = json.loads(passwords.read_text())["admin"]
    assert password != "admin" and len(password) >= 16
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    first = capsys.readouterr().out
    assert password in first and str(passwords) in first
    assert airflow_local.ensure_secrets(tmp_path / "a") == (passwords, jwt)
    assert json.loads(passwords.read_text())["admin"] == password
    assert password not in capsys.readouterr().out, "shown on the first start only"
    other, _ = airflow_local.ensure_secrets(tmp_path / "b")
    assert json.loads(other.read_text())["admin"] != password


def test_components_get_the_spark_connect_token_in_their_environment_only(tmp_path):
    env = airflow_local.component_env(tmp_path, 8080, "sc://localhost:15002", "tok")
    token = env[airflow_local.TOKEN_ENV]
    assert len(token) >= 32 and token == (tmp_path / "spark_connect_token").read_text().strip()
    assert stat.S_IMODE((tmp_path / "spark_connect_token").stat().st_mode) == 0o600
    cmd = airflow_local.spark_connect_command(15002, 1)
    assert token not in " ".join(cmd), "a command line is readable by every local user"
    assert "spark.connect.grpc.binding.address=127.0.0.1" in cmd
    assert "spark.python.sql.dataFrameDebugging.enabled=false" in cmd  # as get_spark's sessions
    assert "spark.sql.shuffle.partitions=2" in cmd  # as get_spark's local sessions
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])["host"] == "sc://localhost"


CLIENT = """
import os, sys
from pyspark.sql import SparkSession
try:
    n = SparkSession.builder.remote(sys.argv[1]).getOrCreate().range(3).count()
    print("COUNT", n)
except Exception as exc:
    print("REFUSED", type(exc).__name__, str(exc)[:300].replace(chr(10), " "))
"""


def _client(url: str, token: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != airflow_local.TOKEN_ENV}
    if token:
        env[airflow_local.TOKEN_ENV] = token
    out = subprocess.run([sys.executable, "-c", CLIENT, url], env=env, capture_output=True, text=True, timeout=120)
    return next((line for line in out.stdout.splitlines() if line.startswith(("COUNT", "REFUSED"))), out.stderr[-500:])


@pytest.mark.spark
def test_the_spark_connect_server_refuses_clients_without_the_token(tmp_path):
    port = airflow_local.free_port()
    env = airflow_local.component_env(tmp_path, 8080, f"sc://localhost:{port}", "tok")
    with airflow_local.spark_connect_server(1, env, tmp_path / "connect.log", port=port, timeout=150):
        url = f"sc://localhost:{port}"
        assert _client(url, None).startswith("REFUSED")
        assert _client(url, "not-the-token").startswith("REFUSED")
        assert _client(url, env[airflow_local.TOKEN_ENV]) == "COUNT 3"
