"""Prepare and partition the study data: check, clean, encode, split, shuffle, W Parquet partitions.

Store layout written here (see docs/architecture.md):
    data/prepared/{train,val}/            features (array<float>), label (double), _order (long, 0..n-1)
    data/{train,val}/_partition=<w>/      the same columns, row i of a split lands in partition i % W
    data/meta.json                        what the trainer needs to rebuild shapes and decode labels

Determinism: the split and the shuffle come from a seeded hash of each row's content, not from
``rand()``, because ``rand()`` depends on how Spark happened to split the input files (core count,
file sizes). Same data + same seed therefore gives identical partitions on any cluster.
"""
from __future__ import annotations

import math
from typing import Any

from ..errors import DataError
from ..spec import StudySpec
from ..source import NA_TOKENS, _check_columns_present, source_uri
from ..store import Store

OTHER = "<other>"  # name of the one-hot slot for categories outside the top max_categories
MAX_CLASSES = 1000  # more distinct labels than this is almost surely a continuous (regression) label
_HASH_BUCKETS = 1_000_000_007  # prime modulus turning a 64-bit hash into a uniform [0, 1) draw


# ============================================================================ prepare (Spark)

def prepare(spark, spec: StudySpec, data: Store) -> dict:
    """Clean, encode, split and shuffle the source; write prepared/{train,val} and meta.json."""
    from pyspark.sql import functions as F

    d = spec.data
    df = _read_spark(spark, spec)
    _check_spark_schema(spec, df)
    df = _select_and_cast(spec, df)
    df = _drop_incomplete(spec, df)
    total = df.count()
    if total == 0:
        raise DataError("data.source", f"no rows left in {d.source!r} after dropping rows with a null label or "
                        "feature", "fill the missing values or remove the empty columns from the spec")
    _check_array_shapes(spec, df)
    df, label_classes = _encode_label(spec, df)

    # Seeded content hashes: one for the split, another (independent) for the shuffle order.
    content = [F.col(c) for c in [d.label, *d.feature_columns]]
    u = F.pmod(F.xxhash64(F.lit(spec.seed), F.lit("split"), *content), F.lit(_HASH_BUCKETS)) / _HASH_BUCKETS
    df = (df.withColumn("_is_val", u < F.lit(d.validation_fraction))
            .withColumn("_hash", F.xxhash64(F.lit(spec.seed), F.lit("order"), *content)))
    df = df.cache()
    try:
        train, val = df.filter(~F.col("_is_val")), df.filter(F.col("_is_val"))
        stats = _numeric_stats(spec, train)
        categories = _top_categories(spec, train)
        features, names = _feature_exprs(spec, stats, categories)
        rows = {}
        for split, part in (("train", train), ("val", val)):
            # Rank before encoding: the single-task window then moves the narrow raw rows, not wide arrays.
            out = _with_order(part).select(features.alias("features"),
                                           F.col("_label").cast("double").alias("label"), "_order")
            out.write.mode("overwrite").parquet(data.url("prepared", split))
            rows[split] = spark.read.parquet(data.url("prepared", split)).count()
    finally:
        df.unpersist()
    for split, n in rows.items():
        if n == 0:
            raise DataError("data.validation_fraction", f"the {split} split is empty ({total} usable rows)",
                            "use more data or a validation_fraction nearer 0.2")
    meta = {
        "input_shape": _input_shape(spec, len(names)),
        "task": d.task,
        "num_classes": {"binary": 2, "multiclass": len(label_classes), "regression": 1}[d.task],
        "label_classes": label_classes,
        "feature_names": names,
        "numeric_stats": stats,
        "categories": categories,
        "seed": spec.seed,
        "source": source_uri(d.source),
        "rows": rows,
    }
    data.write_json("meta.json", meta)
    return meta


def _read_spark(spark, spec: StudySpec):
    d = spec.data
    uri = source_uri(d.source)
    try:
        if d.resolved_format == "csv":
            return spark.read.option("header", True).option("inferSchema", True).csv(uri)
        return spark.read.parquet(uri)
    except Exception as exc:  # AnalysisException: path missing / not parquet
        msg = str(exc).splitlines()[0][:200]
        raise DataError("data.source", f"Spark cannot read {d.source!r} as {d.resolved_format} ({msg})",
                        "run `cerebro-ops validate <spec>`, or fix data.source / data.format") from None


def _check_spark_schema(spec: StudySpec, df) -> None:
    from pyspark.sql import types as T

    d = spec.data
    _check_columns_present(spec, df.columns)
    fields = {f.name: f.dataType for f in df.schema.fields}
    for name in d.numeric:
        t = fields[name]
        if isinstance(t, (T.NumericType, T.BooleanType)):
            continue
        if isinstance(t, T.StringType) and d.resolved_format == "csv":
            bad = _first_unparseable_spark(df, name)
            if bad is None:
                continue
            problem = f"column {name!r} holds non-numeric values such as {bad!r}"
        else:
            problem = f"column {name!r} has type {t.simpleString()}, not a number"
        raise DataError(f"data.numeric.{name}", problem,
                        f"move {name!r} to data.categorical, or clean the column so it holds numbers")
    for a in d.arrays:
        t = fields[a.name]
        inner = t
        while isinstance(inner, T.ArrayType):
            inner = inner.elementType
        if not isinstance(t, T.ArrayType) or not isinstance(inner, T.NumericType):
            raise DataError(f"data.arrays.{a.name}", f"column {a.name!r} has type {t.simpleString()}, not an "
                            "array of numbers", "store the array as a Parquet list<double> column")


def _first_unparseable_spark(df, name: str):
    from pyspark.sql import functions as F

    c = F.trim(F.col(name))
    bad = (df.select(c.alias("v"))
             .filter(F.col("v").isNotNull() & ~F.col("v").isin(*NA_TOKENS) & _try_double(F.col("v")).isNull())
             .limit(1).collect())
    return bad[0]["v"] if bad else None


def _try_double(c):
    """null for unparseable strings; plain cast() raises under ANSI mode (the Spark 4 default)."""
    return c.try_cast("double") if hasattr(c, "try_cast") else c.cast("double")


def _select_and_cast(spec: StudySpec, df):
    """Keep the spec's columns only; numerics as double, categoricals as string, arrays flat array<double>."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    d = spec.data
    cols = [F.col(d.label)]
    for n in d.numeric:
        c = F.col(n)
        if isinstance(df.schema[n].dataType, T.StringType):
            c = F.when(F.trim(c).isin(*NA_TOKENS), None).otherwise(F.trim(c))
        cols.append(c.cast("double").alias(n))
    cols += [F.col(n).cast("string").alias(n) for n in d.categorical]
    for a in d.arrays:
        c, t = F.col(a.name), df.schema[a.name].dataType
        while isinstance(t.elementType, T.ArrayType):  # nested lists [[..],[..]] → one flat list
            c, t = F.flatten(c), T.ArrayType(t.elementType.elementType)
        cols.append(c.cast("array<double>").alias(a.name))
    return df.select(*cols)


def _drop_incomplete(spec: StudySpec, df):
    """Rows with a null/NaN label or feature (or a null/NaN array element) cannot be trained on."""
    from pyspark.sql import functions as F

    d = spec.data
    df = df.na.drop(subset=[d.label, *d.numeric, *d.categorical, *(a.name for a in d.arrays)])
    for a in d.arrays:
        df = df.filter(~F.exists(F.col(a.name), lambda x: x.isNull() | F.isnan(x)))
    return df


def _check_array_shapes(spec: StudySpec, df) -> None:
    from pyspark.sql import functions as F

    for a in spec.data.arrays:
        want = math.prod(a.shape)
        bad = (df.groupBy(F.size(a.name).alias("n")).count().filter(F.col("n") != want)
                 .orderBy(F.desc("count")).limit(3).collect())
        if bad:
            seen = ", ".join(f"{r['count']} rows with {r['n']}" for r in bad)
            raise DataError(f"data.arrays.{a.name}", f"every row must hold {want} elements (shape "
                            f"{list(a.shape)}), but found {seen}",
                            "fix the declared shape or drop the malformed rows from the source")


def _encode_label(spec: StudySpec, df) -> tuple[Any, list]:
    """Adds `_label` (numeric) and returns the sorted original classes ([] for regression)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    d = spec.data
    t = df.schema[d.label].dataType
    if d.task == "regression":
        if not isinstance(t, (T.NumericType, T.BooleanType)):
            raise DataError("data.label", f"regression needs a numeric label, {d.label!r} is {t.simpleString()}",
                            "use task binary/multiclass, or a numeric label column")
        return df.withColumn("_label", F.col(d.label).cast("double")), []
    classes = sorted(r[0] for r in df.select(d.label).distinct().limit(MAX_CLASSES + 1).collect())
    if len(classes) > MAX_CLASSES:
        raise DataError("data.task", f"label {d.label!r} has more than {MAX_CLASSES} distinct values",
                        "use task: regression for a continuous label, or bucket the label")
    if len(classes) < 2:
        raise DataError("data.label", f"label {d.label!r} has a single class ({classes[0]!r}) after cleaning",
                        "a classifier needs at least two classes: check the data or the label column")
    if d.task == "binary" and len(classes) > 2:
        raise DataError("data.task", f"binary task but label {d.label!r} has {len(classes)} distinct values "
                        f"(e.g. {classes[:5]})", "set data.task: multiclass (or regression)")
    # Index in the sorted class list: 0/1 stays 0/1, booleans give False→0, True→1.
    lookup = F.array(*[F.lit(c) for c in classes]).cast(T.ArrayType(t))
    df = df.withColumn("_label", (F.array_position(lookup, F.col(d.label)) - 1).cast("double"))
    return df, [_jsonable(c) for c in classes]


def _jsonable(v):
    return v.item() if hasattr(v, "item") else v


def _numeric_stats(spec: StudySpec, train) -> dict:
    from pyspark.sql import functions as F

    numeric = spec.data.numeric
    if not numeric:
        return {}
    aggs = []
    for n in numeric:
        aggs += [F.mean(n).alias(f"{n}__mean"), F.stddev_pop(n).alias(f"{n}__std")]
    row = train.agg(*aggs).collect()[0]
    stats = {}
    for n in numeric:
        mean, std = row[f"{n}__mean"], row[f"{n}__std"]
        # std 0 (constant column) or undefined (empty train) would divide by zero: scale by 1 instead.
        stats[n] = {"mean": float(mean or 0.0), "std": float(std) if std and std > 0 else 1.0}
    return stats


def _top_categories(spec: StudySpec, train) -> dict:
    """Top max_categories values per column on the train split; ties broken by value for determinism."""
    from pyspark.sql import functions as F

    out = {}
    for n in spec.data.categorical:
        rows = (train.groupBy(n).count().orderBy(F.desc("count"), F.asc(n))
                .limit(spec.data.max_categories).collect())
        out[n] = sorted(r[n] for r in rows)
    return out


def _feature_exprs(spec: StudySpec, stats: dict, categories: dict):
    """One array<float> column: standardised numerics, one-hot categoricals (+other), flattened arrays."""
    from pyspark.sql import functions as F

    d = spec.data
    scalars, names = [], []
    for n in d.numeric:
        scalars.append((F.col(n) - F.lit(stats[n]["mean"])) / F.lit(stats[n]["std"]))
        names.append(n)
    for n in d.categorical:
        values = categories[n]
        for v in values:
            scalars.append((F.col(n) == F.lit(v)).cast("double"))
            names.append(f"{n}={v}")
        scalars.append((~F.col(n).isin(*values) if values else F.lit(True)).cast("double"))
        names.append(f"{n}={OTHER}")
    parts = [F.array(*scalars)] if scalars else []
    for a in d.arrays:
        parts.append(F.col(a.name))
        names += [f"{a.name}[{i}]" for i in range(math.prod(a.shape))]
    combined = parts[0] if len(parts) == 1 else F.concat(*parts)
    return combined.cast("array<float>"), names


def _with_order(df):
    """Replace the seeded hash by its rank 0..n-1: the shuffle order every reader uses."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # A global window is one task; fine at the scale we target (~1M rows), and it makes _order dense so
    # that partition() can balance exactly. Ties are identical rows, so their order cannot matter.
    w = Window.orderBy("_hash", "_label")
    return df.withColumn("_order", (F.row_number().over(w) - 1).cast("long")).drop("_hash")


def _input_shape(spec: StudySpec, n_features: int) -> list[int]:
    d = spec.data
    if len(d.feature_columns) == 1 and len(d.arrays) == 1:
        return list(d.arrays[0].shape)
    return [n_features]


# ============================================================================ partition (Spark)

def partition(spark, spec: StudySpec, data: Store, workers: int) -> dict:
    """Split prepared train/val into `workers` balanced Parquet partitions (row i → partition i % W)."""
    from pyspark.sql import functions as F

    if workers < 1:
        raise DataError("train.workers", f"{workers} workers", "use at least one worker")
    meta = data.read_json("meta.json")
    counts = {}
    for split in ("train", "val"):
        df = spark.read.parquet(data.url("prepared", split))
        df = df.withColumn("_partition", (F.col("_order") % F.lit(workers)).cast("int"))
        # One file per partition directory, rows in _order: readers sort anyway, but this keeps it cheap.
        (df.repartition(workers, "_partition").sortWithinPartitions("_order")
           .write.mode("overwrite").partitionBy("_partition").parquet(data.url(split)))
        got = {r["_partition"]: r["count"] for r in df.groupBy("_partition").count().collect()}
        counts[split] = [int(got.get(w, 0)) for w in range(workers)]
    meta.update({"workers": workers, "counts": counts})
    data.write_json("meta.json", meta)
    return meta
