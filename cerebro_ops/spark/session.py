"""Getting a Spark session: local[N], spark://host:port, or a shared Spark Connect session (sc://)."""
from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path

# Task attempts in local mode: plain local[N] never retries a failed task, so a worker process that dies
# mid-hop (OOM kill, segfault) would fail the whole epoch. local[N,F] retries it like a cluster does.
LOCAL_MAX_FAILURES = 4


def with_task_retries(master: str) -> str:
    """local[N] / local[*] / local -> local[N,4]; any other master (and local[N,F]) is returned as is."""
    if master == "local":
        return f"local[1,{LOCAL_MAX_FAILURES}]"
    m = re.fullmatch(r"local\[(\d+|\*)\]", master)
    return f"local[{m.group(1)},{LOCAL_MAX_FAILURES}]" if m else master


# A local session's shuffles (prepare's category counts, split and order windows) run in 2 partitions, not 8:
# prepare only aggregates and windows the rows it writes, and more, smaller tasks only add scheduling and
# warm-up. Prepare from a new JVM, 2 CPUs, interleaved runs: 20k rows 5.80 -> 5.39 s (4 each), flights_full
# 14.5 -> 13.4 s (3 each). The number is fixed, not the core count: the statistics' floating-point sums run
# over these partitions, and a study's data should not change with the machine that prepares it. Other masters
# keep 8 (Spark's 200 is for far more data than a study prepares).
LOCAL_SHUFFLE_PARTITIONS = 2
CLUSTER_SHUFFLE_PARTITIONS = 8


def shuffle_partitions(master: str) -> int:
    """spark.sql.shuffle.partitions for a session on `master` (local, local[N], local[N,F], local[*] or another)."""
    return LOCAL_SHUFFLE_PARTITIONS if master.startswith("local") else CLUSTER_SHUFFLE_PARTITIONS


# log4j2 configuration of a quiet driver JVM: ERROR and above only. pyspark's JVM entry point starts logging
# "as a shell": unless its own logger is configured at the root's level, Spark prints a "Setting default log
# level" banner and lowers the console threshold to WARN.
_QUIET_LOG4J2 = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.pyshell.name = org.apache.spark.api.python.PythonGatewayServer
logger.pyshell.level = error
"""


# With pyspark's DataFrame debugging on, every function that builds a column first asks the JVM for the active
# session, a setting and the call site's origin (about 8 py4j round trips each): 5,400 of the 9,300 calls of a
# prepare, 0.2 s warm and 0.4 s in a new JVM on 20k rows. It only adds the Python call site to Spark's errors.
NO_DATAFRAME_DEBUGGING = ("spark.python.sql.dataFrameDebugging.enabled", "false")

# Python workers are forked from a daemon that has imported TensorFlow (see warm_daemon.py).
WARM_DAEMON = "cerebro_ops.spark.warm_daemon"


def spark_env() -> None:
    """Workers must run this interpreter (TensorFlow lives in its venv) and bind to loopback locally."""
    from cerebro_ops.core.output import quiet_libraries

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    quiet_libraries()  # TF_CPP_MIN_LOG_LEVEL=3 unless verbose or set: local workers inherit it


@functools.cache
def quiet_log4j2_file() -> str:
    """Path of the quiet log4j2 configuration, written once per process into a private directory (mkdtemp:
    mode 0700, a new name each time). A fixed name in the shared temp directory could be pre-created by
    another local user (every quiet start fails) or swapped for their own appenders (writing our files)."""
    private = tempfile.mkdtemp(prefix="cerebro-ops-log4j2-")
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    path = Path(private) / "quiet.properties"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_QUIET_LOG4J2)
    return str(path)


def follow_output_level(spark) -> None:
    """Spark's log level and the Python workers' environment (TensorFlow's C++ log level, quiet or verbose)
    follow the driver's; also for a session created before (a user's own, or one reused across runs)."""
    from cerebro_ops.core.output import spark_log_level, worker_environment

    spark.sparkContext.setLogLevel(spark_log_level())
    # pyspark ships SparkContext.environment with every Python function; workers start with it.
    spark.sparkContext.environment.update(worker_environment())


# A local JVM that goes through little data spends its life warming up: C2, the optimising JIT, compiles on
# one of the CPUs the jobs need, for code that runs a few more times. Below this many bytes of source (the
# needed columns, uncompressed; source.source_bytes) it only costs: prepare + partition, 2 CPUs, cold JVM with
# the class archive, 2 runs each: 20k rows (0.24 MB) 11.0 -> 8.1 s, 120k rows (1.1 MB) 14.2 -> 11.8 s; but
# 327k rows (3.1 MB) 18.2 -> 19.7 s, as C1's code runs the heavier jobs slower. C1 alone reserves 48 MB
# for compiled code, which Spark's generated classes can fill: the reservation of a tiered JVM is kept.
SHORT_JVM_SOURCE_BYTES = 1_500_000
SHORT_JVM_OPTIONS = ["-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m"]
# A smaller source also runs its SQL stages without whole-stage code generation: compiling each stage's
# generated Java (Janino, on the job's own thread, in code the JIT has not compiled yet) costs more than the
# generated code saves on so few rows. Cold study, command to champion, 3 interleaved runs each: 20k rows
# (0.24 MB) 11.45 -> 10.50 s, 50k rows (0.56 MB) 12.18 -> 11.76 s, but 130k rows (1.39 MB) 15.0 -> 15.35 s.
# (Interpreting every expression as well, spark.sql.codegen.factoryMode=NO_CODEGEN, 20k rows: 11.32 s.)
INTERPRETED_SQL_SOURCE_BYTES = 750_000
INTERPRETED_SQL_CONFS = {"spark.sql.codegen.wholeStage": "false"}


def _at_most(source_bytes: int | None, limit: int) -> bool:
    return source_bytes is not None and source_bytes <= limit


def jit_options(source_bytes: int | None) -> list[str]:
    """The driver JVM's JIT settings for a local session over `source_bytes` of data (None: unknown)."""
    return list(SHORT_JVM_OPTIONS) if _at_most(source_bytes, SHORT_JVM_SOURCE_BYTES) else []


def sql_confs(source_bytes: int | None) -> dict[str, str]:
    """The SQL settings of a local session over `source_bytes` of data (None: unknown), beside jit_options."""
    return dict(INTERPRETED_SQL_CONFS) if _at_most(source_bytes, INTERPRETED_SQL_SOURCE_BYTES) else {}


# A driver JVM that cerebro-ops starts lives for one study (or one Airflow task): the throughput collector
# suits it better than G1, whose concurrent threads and costlier write barriers share the same few CPUs.
# Prepare + partition from a new JVM, 2 CPUs, 2 runs each: flights_full 16.7-17.1 -> 15.2-15.3 s, 20k rows
# (fast JIT tier only) 6.4-7.1 -> 6.0-6.1 s. A long-lived Spark Connect server keeps the JVM's default.
THROUGHPUT_GC = "-XX:+UseParallelGC"
# Where a user may already have chosen a collector for every JVM: two collectors stop the JVM from starting.
JVM_ENV_OPTIONS = ("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS")


def gc_options(options: list[str]) -> list[str]:
    """The collector for a new driver JVM started with `options`: none when they or the JVM environment
    variables already choose one."""
    chosen = " ".join([*options, *(os.environ.get(v, "") for v in JVM_ENV_OPTIONS)])
    return [] if re.search(r"-XX:\+Use\w*GC\b", chosen) else [THROUGHPUT_GC]


def local_source_bytes(spec, master: str) -> int | None:
    """The study's source size for a local session's JIT (jit_options); None on a cluster or a Spark Connect
    server, whose JVMs outlive the study (and a remote source's metadata is not read for nothing)."""
    from cerebro_ops.data.source import source_bytes

    return source_bytes(spec) if master.startswith("local") else None


def study_spark(spec, master: str):
    """The session a study's steps run on: on `master`, named after the study, a new local JVM sized to the
    study's source (the CLI's spec master, or an Airflow task's resolved connection)."""
    return get_spark(master, app_name=f"cerebro-{spec.name}", source_bytes=local_source_bytes(spec, master))


def get_spark(master: str, app_name: str = "cerebro-ops", java_options: list[str] | None = None,
              source_bytes: int | None = None):
    """Return a session; reuses the active one in this process (one Spark session for all epochs).
    `java_options`: the driver JVM's, instead of this install's class archive (spark/class_archive.py);
    `source_bytes`: how much data a new local JVM will prepare (jit_options)."""
    spark_env()
    from pyspark.sql import SparkSession

    if master.startswith("sc://"):  # every task joins one shared session: warm Python workers
        from cerebro_ops.spark.connect import connect_session
        return connect_session(master)
    from cerebro_ops.core.output import is_verbose, worker_environment
    from cerebro_ops.spark import class_archive

    master = with_task_retries(master)
    active = SparkSession.getActiveSession()
    if active is not None and active.sparkContext.master == master:
        follow_output_level(active)
        return active
    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.python.worker.reuse", "true")
               .config("spark.python.daemon.module", WARM_DAEMON)
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", str(shuffle_partitions(master)))
               .config(*NO_DATAFRAME_DEBUGGING)
               .config("spark.driver.memory", "2g"))
    for name, value in worker_environment().items():
        builder = builder.config(f"spark.executorEnv.{name}", value)
    for name, value in sql_confs(source_bytes).items():
        builder = builder.config(name, value)
    options = class_archive.java_options() if java_options is None else list(java_options)
    options += jit_options(source_bytes)
    options += gc_options(options)
    if not is_verbose():  # read when the driver JVM starts: no INFO/WARN lines, no stage progress bars
        options.append(f"-Dlog4j2.configurationFile={quiet_log4j2_file()}")
        builder = builder.config("spark.ui.showConsoleProgress", "false")
    if options:
        builder = builder.config("spark.driver.extraJavaOptions", " ".join(options))
    spark = builder.getOrCreate()
    follow_output_level(spark)
    return spark


def warm_up_workers(spark) -> threading.Thread:
    """Start the executor's Python daemon now, on a thread: its TensorFlow import then overlaps the work before
    the first epoch (prepare, partition) instead of delaying the epoch's workers. One task of one row."""
    def run() -> None:
        try:
            spark.range(1, numPartitions=1).mapInPandas(_pass_through, schema="id long").collect()
        except Exception:  # noqa: BLE001 - only a head start: the epoch's job starts the daemon anyway
            pass
    thread = threading.Thread(target=run, name="warm-up-workers", daemon=True)
    thread.start()
    return thread


def _pass_through(batches):
    yield from batches
