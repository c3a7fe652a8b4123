"""The JVM class archive (spark/class_archive.py): named after the JVM and Spark's jars, used only once built,
built atomically, and mapped by the driver JVM of a local session."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cerebro_ops.spark import class_archive


@pytest.fixture
def fake_install(tmp_path, monkeypatch):
    """A java binary and a jars directory of our own, and an empty cache."""
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("")
    jars = tmp_path / "spark" / "jars"
    jars.mkdir(parents=True)
    for name in ("spark-core.jar", "spark-sql.jar"):
        (jars / name).write_bytes(b"x" * 10)
    monkeypatch.setattr(class_archive, "java_binary", lambda: str(java))
    monkeypatch.setattr(class_archive, "spark_jars", lambda: jars)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(class_archive.DISABLE_ENV, raising=False)
    return jars


def test_the_archive_name_changes_with_any_jar(fake_install):
    before = class_archive.archive_path()
    assert before.parent == Path(os.environ["XDG_CACHE_HOME"]) / "cerebro-ops" / "jvm"
    assert class_archive.archive_path() == before  # stable while nothing changes
    (fake_install / "spark-sql.jar").write_bytes(b"y" * 11)  # another Spark version
    assert class_archive.archive_path() != before
    changed = class_archive.archive_path()
    (fake_install / "extra.jar").write_bytes(b"z")
    assert class_archive.archive_path() not in (before, changed)


def test_the_class_path_settings_of_the_environment_name_their_own_archive(fake_install, monkeypatch):
    monkeypatch.delenv("SPARK_CONF_DIR", raising=False)
    plain = class_archive.archive_path()
    monkeypatch.setenv("SPARK_CONF_DIR", "/etc/spark/conf")  # the launcher puts it first on the class path
    assert class_archive.archive_path() != plain
    assert class_archive.archive_path().name.startswith(class_archive._install_prefix())


def test_no_options_until_the_archive_exists(fake_install, monkeypatch):
    assert class_archive.java_options() == []
    path = class_archive.archive_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    options = class_archive.java_options()
    assert options[0] == f"-XX:SharedArchiveFile={path}"
    assert "-Xlog:cds=off" in options and "-Xlog:cds+dynamic=off" in options  # a stale archive: no warning
    monkeypatch.setenv(class_archive.DISABLE_ENV, "off")
    assert class_archive.java_options() == []


def test_no_java_no_archive(fake_install, monkeypatch, capsys):
    from cerebro_ops import cli

    monkeypatch.setattr(class_archive, "java_binary", lambda: None)
    assert class_archive.archive_path() is None
    assert class_archive.java_options() == []
    with pytest.raises(RuntimeError, match="no java binary"):
        class_archive.build()
    assert cli.main(["jvm-archive"]) == 1  # one line saying why, no traceback
    assert "error: no class archive built: no java binary" in capsys.readouterr().err


_MAPS = textwrap.dedent("""
    import json, sys
    from cerebro_ops.spark.class_archive import archive_path
    from cerebro_ops.spark.session import get_spark
    spark = get_spark("local[1]", source_bytes=1000)
    pid = spark.sparkContext._gateway.proc.pid  # spark-submit execs the driver JVM in this process
    maps = open(f"/proc/{pid}/maps").read()
    print(json.dumps({"archive": str(archive_path()), "mapped": str(archive_path()) in maps,
                      "options": spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"),
                      "rows": spark.range(5).count(),
                      "gcs": [b.getName() for b in spark._jvm.java.lang.management.ManagementFactory
                              .getGarbageCollectorMXBeans()]}))
""")


@pytest.mark.spark
@pytest.mark.slow
def test_a_built_archive_is_mapped_by_a_new_local_session(tmp_path):
    """Also: a session for a small source starts with its JIT settings beside the archive's."""
    base = subprocess.run([class_archive.java_binary(), "-Xshare:on", "-version"], capture_output=True, text=True)
    if base.returncode != 0:  # a dynamic archive extends the JDK's own; without one no archive can be built
        pytest.skip(f"this JDK has no default CDS archive: {base.stderr.strip()[-200:]}")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop(class_archive.DISABLE_ENV, None)
    folder = tmp_path / "cache" / "cerebro-ops" / "jvm"
    folder.mkdir(parents=True)
    prefix = class_archive._install_prefix()
    (folder / f"{prefix}0123456789abcdef0123.jsa").write_bytes(b"an older archive of this install")
    (folder / "spark-otherins-0123456789abcdef0123.jsa").write_bytes(b"another install's")
    build = subprocess.run([sys.executable, "-m", "cerebro_ops.cli", "jvm-archive"], env=env, capture_output=True,
                           text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    (folder / "spark-otherins-0123456789abcdef0123.jsa").unlink()  # kept: not this install's
    archives = list(folder.iterdir())
    assert len(archives) == 1 and archives[0].suffix == ".jsa"  # renamed into place, nothing staged left over
    assert archives[0].stat().st_size > 10_000_000  # Spark's classes, not an empty file
    assert str(archives[0]) in build.stdout

    out = subprocess.run([sys.executable, "-c", _MAPS], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    import json
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["archive"] == str(archives[0])
    assert seen["mapped"] is True
    assert f"-XX:SharedArchiveFile={archives[0]}" in seen["options"]
    assert seen["rows"] == 5
    assert "-XX:TieredStopAtLevel=1" in seen["options"]  # a small source: the JVM's JIT stops at C1
    assert "PS Scavenge" in seen["gcs"]  # the throughput collector, with the archive built under it
    assert "shared archive" not in out.stdout + out.stderr  # no JVM warning reaches the user
