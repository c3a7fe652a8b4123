"""WarmLocalExecutor: LocalExecutor's forked workers (the parents of every task process) start with the study
code, MLflow and the Spark Connect client imported, and without TensorFlow."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("airflow")

# In a fresh interpreter (this one has imported half of them already): start an executor with one worker,
# write which shared libraries the worker process maps to a file (its worker logs to stdout), stop it.
PROBE = """
import json, sys
from airflow.executors.local_executor import LocalExecutor
from cerebro_ops.airflow.executor import WarmLocalExecutor
cls = WarmLocalExecutor if sys.argv[1] == "warm" else LocalExecutor
executor = cls(parallelism=1)
executor.start()
try:
    (pid,) = executor.workers
    maps = open(f"/proc/{pid}/maps").read()
    with open(sys.argv[2], "w") as out:
        json.dump({"fork": executor.is_mp_using_fork, "grpc": "cygrpc" in maps,
                   "sqlalchemy": "sqlalchemy" in maps, "tensorflow": "_pywrap_tensorflow" in maps}, out)
finally:
    for proc in executor.workers.values():
        proc.terminate()
        proc.join(10)
"""


def _worker_maps(kind: str, tmp_path) -> dict:
    result = tmp_path / f"{kind}.json"
    out = subprocess.run([sys.executable, "-c", PROBE, kind, str(result)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(result.read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/maps")
def test_workers_start_with_spark_connect_and_mlflow_imported_but_not_tensorflow(tmp_path):
    warm, plain = _worker_maps("warm", tmp_path), _worker_maps("plain", tmp_path)
    assert warm["fork"] and plain["fork"]
    assert warm["grpc"] and warm["sqlalchemy"] and not warm["tensorflow"]
    assert not plain["grpc"]  # a plain LocalExecutor's worker imports them per task, as before


def test_a_module_that_cannot_be_imported_is_reported_not_raised(caplog):
    from cerebro_ops.airflow.executor import preimport

    assert preimport(("json", "cerebro_ops.no_such_module")) == ["cerebro_ops.no_such_module"]
    assert "not preloaded for task processes: cerebro_ops.no_such_module" in caplog.text
