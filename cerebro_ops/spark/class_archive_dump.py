"""The JVM run that writes a class archive (run by class_archive.build in a process of its own).

`python -m cerebro_ops.spark.class_archive_dump ARCHIVE WORKDIR`: a local Spark whose driver JVM dumps the
classes it loaded into ARCHIVE when it exits, after the jobs a study runs first: prepare and partition of a
small flights sample (statistics, missing values, categories, Parquet writes) and one Python task. The JVM's
class path is written to WORKDIR/class_path (the archive only maps with it). Exits when the JVM has exited:
its exit code is the dump's.
"""
from __future__ import annotations

import sys
from pathlib import Path


def _spec(source: Path, work: Path):
    from cerebro_ops.core.spec import parse_spec
    from cerebro_ops.example_data import FLIGHT_CATEGORICAL, FLIGHT_NUMERIC

    return parse_spec({
        "name": "jvm_archive", "seed": 0,
        "data": {"source": str(source), "label": "delayed", "task": "binary", "numeric": FLIGHT_NUMERIC,
                 "categorical": FLIGHT_CATEGORICAL, "validation_fraction": 0.2},
        "model": {"builder": "cerebro_ops.builders:mlp"},
        "search": {"method": "grid", "space": {"hidden_units": [8]}},
        "train": {"epochs": 1, "workers": 2},
        "runtime": {"store": (work / "store").as_uri(), "spark_master": "local[2]"}})


def main(archive: str, workdir: str) -> int:
    from cerebro_ops.example_data import make_example_data
    from cerebro_ops.spark import prepare as prep
    from cerebro_ops.spark.class_archive import BUILD_ROWS
    from cerebro_ops.spark.session import get_spark
    from cerebro_ops.store import Store

    work = Path(workdir)
    spec = _spec(make_example_data("flights", work / "source", rows=BUILD_ROWS), work)
    spark = get_spark("local[2]", java_options=[f"-XX:ArchiveClassesAtExit={archive}"])
    data = Store(spec.runtime.store).sub("data")
    prep.prepare(spark, spec, data)
    prep.partition(spark, spec, data, spec.train.workers)
    spark.range(4, numPartitions=2).mapInPandas(lambda batches: batches, schema="id long").collect()
    (work / "class_path").write_text(spark.sparkContext._jvm.System.getProperty("java.class.path"))
    gateway = spark.sparkContext._gateway
    spark.stop()
    jvm = gateway.proc
    jvm.stdin.close()  # the gateway JVM exits when its stdin closes, and dumps on its way out
    return jvm.wait(timeout=300)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
