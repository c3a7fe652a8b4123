"""builder_check.py on a real Spark Connect server: a check that fails while one of prepare's jobs runs
interrupts that job through its session tag (spark/job_tags.py), and the session still works afterwards."""
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
import sys, threading, time
from cerebro_ops.builder_check import BuilderCheck
from cerebro_ops.spark.session import get_spark

spark = get_spark(sys.argv[1])
started = threading.Event()

def check():
    started.wait(60)
    time.sleep(0.5)  # the job is running by now
    raise ValueError("the builder is broken")

check_ = BuilderCheck(check)
t0 = time.time()
try:
    with check_.interrupting(spark, "cerebro-prepare-test"):
        started.set()
        spark.range(0, 10**11, numPartitions=1).selectExpr("sum(sqrt(id))").collect()  # minutes, uninterrupted
    print("FINISHED", flush=True)
except Exception as exc:
    print(f"INTERRUPTED {time.time() - t0:.1f} {'OPERATION_CANCELED' in str(exc)}", flush=True)
print(f"ERROR {check_.error()}", flush=True)
print(f"COUNT {spark.range(3).count()}", flush=True)
"""


def test_a_failed_check_interrupts_the_running_job_on_spark_connect(tmp_path):
    env = {**os.environ, airflow_local.TOKEN_ENV: secrets.token_hex(16)}
    with airflow_local.spark_connect_server(1, env, tmp_path / "connect.log", timeout=150) as port:
        out = subprocess.run([sys.executable, "-c", CLIENT, f"sc://localhost:{port}"], env=env, cwd=str(REPO),
                             capture_output=True, text=True, timeout=300)
    lines = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in out.stdout.splitlines() if " " in line}
    assert "INTERRUPTED" in lines, out.stdout + out.stderr[-2000:]
    seconds, canceled = lines["INTERRUPTED"].split()
    assert float(seconds) < 30 and canceled == "True"
    assert lines["ERROR"] == "the builder is broken"
    assert lines["COUNT"] == "3"
