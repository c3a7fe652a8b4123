"""connect.connect_session on a real Spark Connect server: every process joins the one shared session, and a
process that finds it closed (a restart, an expiry, a stop) starts a new one instead of failing."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import airflow_local

pytestmark = [pytest.mark.spark, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

CLIENT = r"""
import sys
from cerebro_ops.spark.connect import connect_session, shared_session_url

url = sys.argv[1]
first = connect_session(url)
print("SHARED", shared_session_url(url).rsplit("session_id=", 1)[1], flush=True)
print("FIRST", first.session_id, first.range(4).count(), flush=True)
first.stop()  # the server closes the shared session: what the next process to join it finds
again = connect_session(url)
print("AGAIN", again.session_id, again.range(3).count(), flush=True)
"""


def test_a_closed_shared_session_is_replaced_by_a_new_one(tmp_path):
    env = {**os.environ, airflow_local.TOKEN_ENV: secrets.token_hex(16)}
    with airflow_local.spark_connect_server(1, env, tmp_path / "connect.log", timeout=150) as port:
        out = subprocess.run([sys.executable, "-c", CLIENT, f"sc://localhost:{port}"], env=env, cwd=str(REPO),
                             capture_output=True, text=True, timeout=120)
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1].split() for line in out.stdout.splitlines() if " " in line}
    assert "AGAIN" in lines, out.stdout + out.stderr[-2000:]
    shared, = lines["SHARED"]
    assert lines["FIRST"] == [shared, "4"]
    again_id, count = lines["AGAIN"]
    assert again_id != shared and count == "3"
