"""source_bytes: how much data a study's Spark jobs go through, from file metadata (it picks the JVM's JIT)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from cerebro_ops import study
from cerebro_ops.data.source import source_bytes
from cerebro_ops.spark import session
from tests.data.test_check_source import make_spec


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x1": rng.normal(size=rows), "x2": rng.normal(size=rows),
                         "color": rng.choice(["red", "blue", "green"], size=rows), "label": rng.integers(0, 2, rows)})


def _uncompressed(path, columns) -> int:
    meta = pq.read_metadata(path)
    return sum(meta.row_group(g).column(c).total_uncompressed_size for g in range(meta.num_row_groups)
               for c in range(meta.num_columns) if meta.row_group(g).column(c).path_in_schema in columns)


def test_parquet_counts_only_the_needed_columns(tmp_path):
    frame = _frame(5000)
    frame.to_parquet(tmp_path / "narrow.parquet")
    wide = frame.assign(unused=[f"a long text the study never reads {i}" for i in range(len(frame))])
    wide.to_parquet(tmp_path / "wide.parquet")
    needed = {"x1", "x2", "color", "label"}
    narrow_bytes = source_bytes(make_spec(tmp_path / "narrow.parquet"))
    assert narrow_bytes == _uncompressed(tmp_path / "narrow.parquet", needed) > 5000 * 16
    assert source_bytes(make_spec(tmp_path / "wide.parquet")) == _uncompressed(tmp_path / "wide.parquet", needed)
    assert source_bytes(make_spec(tmp_path / "narrow.parquet", numeric=("x1",))) < narrow_bytes


def test_a_parquet_directory_sums_its_files(tmp_path):
    frame = _frame(4000)
    (tmp_path / "dir").mkdir()
    frame.iloc[:1000].to_parquet(tmp_path / "dir" / "part-0.parquet")
    frame.iloc[1000:].to_parquet(tmp_path / "dir" / "part-1.parquet")
    needed = {"x1", "x2", "color", "label"}
    expected = sum(_uncompressed(tmp_path / "dir" / f"part-{i}.parquet", needed) for i in (0, 1))
    assert source_bytes(make_spec(tmp_path / "dir", format="parquet")) == expected


def test_csv_is_its_file_size_and_a_missing_source_is_unknown(tmp_path):
    _frame(3000).to_csv(tmp_path / "d.csv", index=False)
    assert source_bytes(make_spec(tmp_path / "d.csv")) == (tmp_path / "d.csv").stat().st_size
    assert source_bytes(make_spec(tmp_path / "missing.parquet")) is None


def test_small_sources_get_a_short_lived_jit():
    assert session.jit_options(None) == []
    assert session.jit_options(session.SHORT_JVM_SOURCE_BYTES + 1) == []
    small = session.jit_options(240_000)
    assert "-XX:TieredStopAtLevel=1" in small
    assert "-XX:ReservedCodeCacheSize=240m" in small  # C1 alone would reserve 48 MB


def test_only_smaller_sources_run_sql_stages_without_generated_code():
    off = {"spark.sql.codegen.wholeStage": "false"}
    assert session.sql_confs(240_000) == off
    assert session.sql_confs(session.INTERPRETED_SQL_SOURCE_BYTES) == off
    assert session.sql_confs(session.INTERPRETED_SQL_SOURCE_BYTES + 1) == {}  # still a short-lived JIT
    assert session.jit_options(session.INTERPRETED_SQL_SOURCE_BYTES + 1) != []
    assert session.sql_confs(None) == {}


def test_a_new_driver_jvm_gets_the_throughput_collector_unless_a_collector_is_chosen(monkeypatch):
    for name in session.JVM_ENV_OPTIONS:
        monkeypatch.delenv(name, raising=False)
    assert session.gc_options(["-XX:SharedArchiveFile=/a.jsa"]) == ["-XX:+UseParallelGC"]
    assert session.gc_options(["-XX:+UseG1GC"]) == []  # the caller's own choice stands
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Xss4m -XX:+UseZGC")  # two collectors: the JVM would not start
    assert session.gc_options([]) == []
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-XX:-UseAdaptiveSizePolicy")  # a GC setting, not a collector
    assert session.gc_options([]) == ["-XX:+UseParallelGC"]


def test_a_local_study_session_is_told_its_source_size(tmp_path, monkeypatch):
    _frame(2000).to_parquet(tmp_path / "d.parquet")
    seen = {}
    monkeypatch.setattr(session, "get_spark", lambda master, app_name, source_bytes=None: seen.setdefault(
        master, source_bytes))
    local = make_spec(tmp_path / "d.parquet")
    study.spark_session(local, None)
    assert seen["local[2]"] == source_bytes(local) > 0
    for master in ("sc://spark.example:15002", "spark://spark.example:7077"):
        remote = dataclasses.replace(local, runtime=dataclasses.replace(local.runtime, spark_master=master))
        study.spark_session(remote, None)
        assert seen[master] is None  # a server's or a cluster's JVMs outlive the study
