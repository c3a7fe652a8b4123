"""Test-wide defaults: Spark's Python workers run this interpreter and bind to loopback, whichever test
starts Spark first (`make test` exports the same). `make test` runs the files in parallel processes
(pytest-xdist); the groups below keep tests that share an expensive fixture in one process."""
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
# Without tiers the JVM reserves 48 MB for compiled code instead of 240 MB: a session shared by a folder's
# studies (tests/realdata) filled it with generated classes, and "Out of space in CodeCache" ended that JVM.
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m")

ROOT = Path(__file__).resolve().parents[1]
# Folders whose files share one session fixture (hosts and a Spark cluster, one finished study and an
# api-server, each real table's study): one worker runs the whole folder, so the fixture is built once.
SHARED_FOLDERS = ("tests/cluster/", "tests/browser/", "tests/realdata/")
# The files that use tests/integration/conftest.py's session Spark and its finished study (`study_run`).
INTEGRATION_STUDY = ("tests/integration/test_cli_study.py", "tests/integration/test_mlflow_restore.py",
                     "tests/integration/test_sequential_equivalence.py")
# The longest groups start first, so that the short files fill in beside them.
LONGEST_FIRST = ("tests/cluster/", "tests/integration/test_airflow_ui_local.py",
                 "tests/integration/test_airflow_dag.py", "integration-study", "tests/browser/", "tests/reliability/test_crash_resume.py",
                 "tests/integration/test_cli_output.py", "tests/integration/test_standalone_cluster.py")


def worker_group(nodeid: str) -> str:
    """Which worker-group a test belongs to: its shared folder, the integration study, else its file."""
    path = nodeid.split("::", 1)[0]
    folder = next((f for f in SHARED_FOLDERS if path.startswith(f)), None)
    return folder or ("integration-study" if path in INTEGRATION_STUDY else path)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """Schedule whole groups (worker_group) to a worker, as --dist loadscope does with modules."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    rank = {g: i for i, g in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(worker_group(item.nodeid), len(rank)))  # stable: file order otherwise
