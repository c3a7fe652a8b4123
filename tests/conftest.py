"""Test-wide defaults: Spark's Python workers run this interpreter and bind to loopback, whichever test
starts Spark first (`make test` exports the same). `make test` runs the files in parallel processes
(pytest-xdist, `--dist loadgroup`); the groups below keep tests that share an expensive fixture together."""
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tests' Spark jobs are tiny and short-lived: the JIT's optimising tier only costs CPU there (set for
# this process and the CLI / Airflow subprocesses the tests start; production keeps the JVM's default).
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1")

ROOT = Path(__file__).resolve().parents[1]
# Folders whose files share one session fixture (hosts and a Spark cluster, one finished study and an
# api-server, each real table's study): one worker runs the whole folder, so the fixture is built once.
SHARED_FOLDERS = ("tests/cluster/", "tests/browser/", "tests/realdata/")
# The longest groups start first, so that the short files fill in beside them.
LONGEST_FIRST = ("tests/cluster/", "tests/integration/test_airflow_ui_local.py", "tests/integration/test_airflow_dag.py",
                 "integration-study", "tests/browser/", "tests/reliability/test_crash_resume.py",
                 "tests/integration/test_cli_output.py", "tests/integration/test_standalone_cluster.py")


def _group(item) -> str:
    path = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
    folder = next((f for f in SHARED_FOLDERS if path.startswith(f)), None)
    if folder:
        return folder
    if path.startswith("tests/integration/") and {"study_run", "spark"} & set(item.fixturenames):
        return "integration-study"  # the session's Spark and its finished study (tests/integration/conftest.py)
    return path


def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        groups[item.nodeid] = group = _group(item)
        item.add_marker(pytest.mark.xdist_group(group))
    rank = {g: i for i, g in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(groups[item.nodeid], len(rank)))  # stable: file order otherwise
