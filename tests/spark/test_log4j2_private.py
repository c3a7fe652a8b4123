"""Spark's quiet log4j2 file lives in a private directory (mkdtemp, 0700), not at a fixed name in the shared
temp directory, where another local user could pre-create it (every quiet start fails) or swap it for their
own appenders (writing files as the victim)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

OLD_FIXED_NAME = "cerebro-ops-log4j2-quiet.properties"
# What "another user" leaves at the old name: a configuration whose appender writes where they choose.
HOSTILE = """rootLogger.level = info
rootLogger.appenderRef.file.ref = stolen
appender.file.type = File
appender.file.name = stolen
appender.file.fileName = {target}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %m%n
"""


def fresh_process_config(tmp_path, start_spark: bool) -> dict:
    """In a new process whose temp directory is `tmp_path`: the config file, its directory's mode, and (with
    start_spark) the driver's extraJavaOptions of a quiet local session."""
    code = f"""
import json, os, stat
from cerebro_ops.spark import session
path = session.quiet_log4j2_file()
out = {{"path": path, "again": session.quiet_log4j2_file(), "text": open(path).read(),
        "dir_mode": stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)}}
if {start_spark!r}:
    spark = session.get_spark("local[1]")
    out["java_opts"] = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions")
    out["rows"] = spark.range(3).count()
    spark.stop()
print("RESULT " + json.dumps(out))
"""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("CEREBRO_VERBOSE", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_a_pre_created_fixed_path_changes_nothing(tmp_path):
    from cerebro_ops.spark.session import _QUIET_LOG4J2

    (tmp_path / OLD_FIXED_NAME).mkdir()  # the "every quiet start fails" variant
    got = fresh_process_config(tmp_path, start_spark=False)
    assert got["path"] == got["again"] and got["text"] == _QUIET_LOG4J2
    private = Path(got["path"]).parent
    assert private.parent == tmp_path and private.name.startswith("cerebro-ops-log4j2-")
    assert got["dir_mode"] == 0o700
    assert not private.exists(), "the private directory is removed when the process ends"


@pytest.mark.spark
def test_a_swapped_config_at_the_old_name_is_not_what_spark_starts_with(tmp_path):
    target = tmp_path / "stolen.log"
    (tmp_path / OLD_FIXED_NAME).write_text(HOSTILE.format(target=target))
    got = fresh_process_config(tmp_path, start_spark=True)
    assert got["rows"] == 3
    assert got["java_opts"].endswith(f" -Dlog4j2.configurationFile={got['path']}")
    assert got["java_opts"].count("log4j2.configurationFile") == 1
    assert Path(got["path"]).parent.name.startswith("cerebro-ops-log4j2-")
    assert not target.exists(), "the other user's appender never ran"
    assert (tmp_path / OLD_FIXED_NAME).read_text() == HOSTILE.format(target=target)
