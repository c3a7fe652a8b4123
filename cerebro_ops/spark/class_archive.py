"""A class archive (JDK AppCDS) for the JVM of a local Spark: Spark starts and plans its first jobs sooner.

Why: a local study spends seconds in a new JVM before its data work is done. Part of that is loading and
verifying the thousands of classes Spark uses (from its ~250 jars), every time. A dynamic CDS archive holds them
already parsed and verified, mapped from one file. On a 2-CPU machine (20k-row study, 5 cold starts each): the
session starts in 1.9-2.2 s instead of 3.0-3.5 s, and prepare's first jobs take about 1 s less.

The archive is built once per JDK and Spark install (`cerebro-ops jvm-archive`, which `make install` runs), into
the user's cache (about 170 MB). Its name is a fingerprint of the java binary, Spark's jars and the class path
settings of the environment (SPARK_CONF_DIR, ...): another JDK, Spark version or class path finds no archive and
starts as before; a rebuild removes the install's older archives. A JVM that cannot use an archive (it checks
the class path itself) starts as before too, silently: the warning it would print is switched off.

Only what this module writes is used: the archive is written by a JVM that exits normally, checked by a second
JVM that must map it (`-Xshare:on`), and only then renamed into place. A truncated archive would crash the JVM.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DISABLE_ENV = "CEREBRO_OPS_JVM_ARCHIVE"  # "off": never use an archive
QUIET = ["-Xlog:cds=off", "-Xlog:cds+dynamic=off"]  # a stale or foreign archive: start without it, no warning
BUILD_ROWS = 5000  # enough rows for every kind of job prepare and partition run (statistics, writes, splits)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cerebro-ops" / "jvm"


def java_binary() -> str | None:
    """The java Spark's launcher runs: $JAVA_HOME/bin/java, else the first java on PATH."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    return os.path.realpath(java) if java and os.path.exists(java) else None


def spark_jars() -> Path:
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home()) / "jars"


# Spark's launcher puts these on the driver's class path (before the jars): a JVM maps an archive only with the
# class path it was written with, so each setting of them has an archive of its own.
CLASS_PATH_ENV = ("SPARK_CONF_DIR", "HADOOP_CONF_DIR", "YARN_CONF_DIR", "SPARK_DIST_CLASSPATH", "SPARK_CLASSPATH")


def fingerprint() -> str | None:
    """Changes with the JVM binary, any of Spark's jars (name, size, mtime) or the class path settings of the
    environment (CLASS_PATH_ENV); None without java or jars."""
    java, jars = java_binary(), spark_jars()
    if java is None or not jars.is_dir():
        return None
    h = hashlib.sha256()
    for name in CLASS_PATH_ENV:
        h.update(f"{name}={os.environ.get(name, '')}\n".encode())
    libjvm = sorted(Path(java).parent.parent.glob("lib/server/libjvm.so"))
    for path in [Path(java), *libjvm, *sorted(jars.glob("*.jar"))]:
        st = path.stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def archive_path() -> Path | None:
    """<cache>/spark-<install>-<fingerprint>.jsa: <install> names the Spark install (its jars' directory), so
    that a rebuild replaces that install's older archives and leaves other installs' alone."""
    fp = fingerprint()
    return cache_dir() / f"{_install_prefix()}{fp}.jsa" if fp else None


def _install_prefix() -> str:
    return "spark-" + hashlib.sha256(str(spark_jars().resolve()).encode()).hexdigest()[:8] + "-"


def java_options() -> list[str]:
    """JVM options for a local Spark's driver: the archive of this JDK and Spark, when one was built."""
    if os.environ.get(DISABLE_ENV, "").lower() in ("off", "0", "false", "no"):
        return []
    path = archive_path()
    if path is None or not path.is_file():
        return []
    return [f"-XX:SharedArchiveFile={path}", *QUIET]


def build(force: bool = False) -> Path:
    """Build this install's archive (about 30 s on 2 CPUs): a JVM runs prepare and partition on a small example
    table, then exits, writing the classes it loaded. Returns the archive's path."""
    target = archive_path()
    if target is None:
        raise RuntimeError("no java binary or Spark jars found: install Java 17 and pyspark first")
    if target.is_file() and not force:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cerebro-ops-jvm-archive-") as work:
        dumped = Path(work) / "spark.jsa"
        proc = subprocess.run([sys.executable, "-m", "cerebro_ops.spark.class_archive_dump", str(dumped), work],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not dumped.is_file():
            raise RuntimeError(f"the archive was not written (exit {proc.returncode}): {proc.stderr[-2000:]}")
        class_path = (Path(work) / "class_path").read_text()
        _check_maps(dumped, class_path)
        staged = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        shutil.move(str(dumped), staged)
        os.replace(staged, target)  # atomic: a JVM never sees a partial archive
    for old in target.parent.glob(f"{_install_prefix()}*.jsa"):
        if old != target:  # ~170 MB each, never used again (a JVM that maps one keeps its pages)
            old.unlink(missing_ok=True)
    return target


def _check_maps(archive: Path, class_path: str) -> None:
    """A JVM with the dump's class path must map the archive (-Xshare:on fails otherwise)."""
    proc = subprocess.run([java_binary(), "-Xshare:on", f"-XX:SharedArchiveFile={archive}", "-cp", class_path,
                           "-version"], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"the archive does not map: {proc.stderr.strip()[-1000:]}")
