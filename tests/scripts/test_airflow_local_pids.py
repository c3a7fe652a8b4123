"""`make airflow-down` after a crash or a reboot: a pid in the pids file may now be another process."""
from __future__ import annotations

import os
import subprocess
import sys

import psutil

from scripts import airflow_local


def _pids_file(home, lines):
    home.mkdir(parents=True, exist_ok=True)
    airflow_local.pids_file(home).write_text("\n".join(lines) + "\n")


def test_a_recorded_process_is_ours_only_with_its_start_time(tmp_path):
    me = os.getpid()
    started = psutil.Process(me).create_time()
    _pids_file(tmp_path, ["token abc", f"supervisor {me} {started}", f"scheduler {me} {started - 100}"])
    pids = airflow_local.read_pids(tmp_path)
    assert pids["token"] == "abc" and pids["supervisor"] == (me, started)
    assert airflow_local.still_ours(pids["supervisor"])
    assert not airflow_local.still_ours(pids["scheduler"]), "same pid, other start time: a reused pid"
    assert not airflow_local.still_ours((2 ** 22 + 7, started)), "no such process"


def test_down_with_a_stale_pids_file_leaves_unrelated_processes_alone(tmp_path, monkeypatch):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        # the file of a run before a reboot: the bystander now has the supervisor's and a component's pid
        _pids_file(tmp_path, ["token stale", f"supervisor {bystander.pid} 12345.0",
                              f"scheduler {bystander.pid} 12345.0"])
        monkeypatch.setattr(airflow_local, "airflow_home", lambda: tmp_path)
        assert airflow_local.cmd_down(None) == 0
        assert bystander.poll() is None, "an unrelated process was signalled"
        assert not airflow_local.pids_file(tmp_path).exists()
    finally:
        bystander.kill()
        bystander.wait()
