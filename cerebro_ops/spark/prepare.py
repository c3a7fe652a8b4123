"""Prepare and partition the study data: check, clean, encode, split, shuffle, W Parquet partitions.

Store layout written here (see docs/architecture.md):
    data/{train,val}/_partition=<w>/      features (array<float>), label (double), _order (long, 0..n-1):
                                          row i of a split lands in partition i % W, each file in _order
    data/raw/{train,val}/                 the same rows as the user has them, with _order
    data/meta.json                        what the trainer needs to rebuild shapes and decode labels
(A run prepared by an older version has its encoded rows in data/prepared/{train,val}; partition splits them.)

Determinism: the split and the shuffle come from a seeded hash of each row's content, not from
``rand()``, because ``rand()`` depends on how Spark happened to split the input files (core count,
file sizes). Same data + same seed therefore gives identical partitions on any cluster.
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable

from cerebro_ops.core.encoding import NA_TOKENS
from cerebro_ops.core.errors import DataError
from cerebro_ops.core.prepare_summary import build_summary
from cerebro_ops.core.spec import DATETIME_PARTS, StudySpec
from cerebro_ops.data.source import MAX_CLASSES, _check_columns_present, source_uri
from cerebro_ops.store import Store
from cerebro_ops.spark import missing
from cerebro_ops.spark.learn import learn

OTHER = "<other>"  # name of the one-hot slot for categories outside the top max_categories
MISSING = "<missing>"  # the slot of a missing value: a categorical's own category, a numeric's 0/1 indicator
_HASH_BUCKETS = 1_000_000_007  # prime modulus turning a 64-bit hash into a uniform [0, 1) draw


# ============================================================================ prepare (Spark)

def prepare(spark, spec: StudySpec, data: Store, on_checked: Callable[[], None] = lambda: None) -> dict:
    """Clean, encode, split and shuffle the source; write the workers' partitions of both splits,
    raw/{train,val} and meta.json. `on_checked()` is called once the data passed every check, before the
    splits are written: the caller may then start what must not exist for bad data.

    Missing values are data (data.missing: impute): only rows without a label are dropped, and meta.json's
    `summary` counts every row read, dropped (and why), imputed or folded into another slot."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # datetime parts as pandas computes them at serving
    with _sql_conf(spark, PREPARE_SQL_CONF):
        return _prepare(spark, spec, data, on_checked)


# Whole-stage code generation: the feature vector is one expression of a slot per numeric, datetime part and
# category, compiled into one method. Above 8,000 bytes of bytecode the JVM never JIT-compiles a method (it
# would run interpreted, several times slower on large tables), so such a stage is generated per operator.
# Adaptive execution re-plans every query at each shuffle and runs each stage as a job of its own: on tables
# of this size that costs more driver time than it saves (prepare's shuffles are hash buckets of at most
# ROWS_PER_GROUP rows and partition()'s has exactly W partitions), so prepare and partition run without it.
# A collect with a limit (the label's values, the first unparseable number) scans every partition in its first
# job: Spark's default tries one partition, then four times more, each try a job of its own.
# lower() only tells "true"/"false" text in any case (ASCII: the same under the JVM's case mapping as under
# ICU's), and ICU's first use initialises its locale data and break iterators: a second or more in a new JVM.
PREPARE_SQL_CONF = {"spark.sql.codegen.hugeMethodLimit": "8000", "spark.sql.adaptive.enabled": "false",
                    "spark.sql.limit.initialNumPartitions": "100000", "spark.sql.icu.caseMappings.enabled": "false"}


@contextlib.contextmanager
def _sql_conf(spark, conf: dict[str, str]):
    """Spark SQL settings for the duration of the block; the session's own values are restored after."""
    before = {}
    for key, value in conf.items():
        try:
            before[key] = spark.conf.get(key, None)
            spark.conf.set(key, value)
        except Exception:  # noqa: BLE001 - a session that refuses the setting runs with its own
            continue
    try:
        yield
    finally:
        for key, value in before.items():
            try:
                spark.conf.unset(key) if value is None else spark.conf.set(key, value)
            except Exception:  # noqa: BLE001
                pass


def _prepare(spark, spec: StudySpec, data: Store, on_checked: Callable[[], None]) -> dict:
    d = spec.data
    source = _read_spark(spark, spec)
    _check_spark_schema(spec, source)
    names = internal_names(spec)
    raw_dtypes = _raw_dtypes(spec, source)
    df = _select_and_cast(spec, source, names)
    counts = missing.count_missing(spec, df, names)
    df, dropped = missing.apply_policy(spec, df, names, counts)
    total = _labelled_rows(spec, counts, dropped)
    _check_array_shapes(spec, df, names, counts["wrong_shape"])
    df = missing.fill_arrays(spec, df, names)
    df, label_classes = _encode_label(spec, df, names[d.label], counts["classes"])
    df = _with_split(spec, df, names, total).cache()
    try:
        candidates = _order_candidates(spec, total, label_classes)
        got = learn(spec, df, names, _bucket_count_aggs(spec.seed, candidates))
        stats, indicators, missing_slots, rows = got["stats"], got["indicators"], got["missing_slots"], got["rows"]
        # A row whose validation flag is null is on neither side (the pre-flight refuses such a column); the
        # train side is sized, for the empty-split check and the order's buckets, as the rows not validation.
        sizes = {"train": total - rows["val"], "val": rows["val"]}
        _check_split_sizes(spec, sizes, total)
        features, feature_names, spans = _feature_exprs(spec, stats, got["categories"], names, indicators,
                                                        missing_slots)
        raw = _raw_columns(spec, names, raw_dtypes)
        split = (df, sizes, _bucket_sizes(got["extra"], candidates, sizes))
        on_checked()
        _write_splits(data, split, (spec.seed, spec.train.workers), features, raw, got["label_stats"])
    finally:
        df.unpersist()
    meta = {
        "input_shape": _input_shape(spec, len(feature_names)),
        "task": d.task,
        "num_classes": {"binary": 2, "multiclass": len(label_classes), "regression": 1}[d.task],
        "label": d.label,
        "label_classes": label_classes,
        "label_stats": got["label_stats"],
        "numeric": list(d.numeric),
        "datetime": {c: list(DATETIME_PARTS) for c in d.datetime},
        "categorical": list(d.categorical),
        "arrays": {a.name: list(a.shape) for a in d.arrays},
        "feature_names": feature_names,
        "feature_spans": spans,
        "numeric_stats": stats,
        "missing_indicators": indicators,
        "categories": got["categories"],
        "missing_categories": missing_slots,
        "raw_dtypes": raw_dtypes,
        "raw_columns": {i: c for c, i in names.items()},
        "split": _split_description(spec),
        "seed": spec.seed,
        "source": source_uri(d.source),
        "rows": rows,
        "missing": d.missing,
        **partition_layout(rows, spec.train.workers)}
    meta["summary"] = build_summary(spec, counts, dropped, rows, stats, indicators, missing_slots, got["cardinality"])
    data.write_json("meta.json", meta)
    return meta


def _labelled_rows(spec: StudySpec, counts: dict, dropped: dict) -> int:
    """The rows left after the missing-value policy; none at all is an error naming the label."""
    total = counts["rows"] - sum(dropped.values())
    if total == 0:
        raise DataError("data.label", f"no row of {spec.data.source!r} has a label ({counts['rows']} rows read)",
                        f"point data.label at the column that holds the target (now {spec.data.label!r})")
    return total


def _raw_columns(spec: StudySpec, names: dict[str, str], raw_dtypes: dict[str, str]) -> list:
    """The label and features as users' rows hold them: numerics were cast to double for encoding and go back
    to their own type."""
    from pyspark.sql import functions as F

    d = spec.data
    return [F.col(names[c]).cast(raw_dtypes[c]) if c in d.numeric else F.col(names[c])
            for c in [d.label, *d.feature_columns]]


def _check_split_sizes(spec: StudySpec, rows: dict, total: int) -> None:
    """Neither the train nor the validation split may be empty (rows: {split: size})."""
    d = spec.data
    for split in ("train", "val"):
        if rows[split] == 0:
            field = "data.validation_column" if d.validation_column else "data.validation_fraction"
            raise DataError(field, f"the {split} split is empty ({total} usable rows)",
                            "mark some rows for each side" if d.validation_column else
                            "use more data or a validation_fraction nearer 0.2")


# shape: the split frame with its sizes, the seed and workers, and the column expressions that write it.
def _write_splits(data: Store, split: tuple, layout: tuple[int, int], features, raw: list,
                  label_stats: dict | None) -> None:
    """<split>/_partition=<w> (encoded, for the W workers) and raw/<split> (the user's rows) of both splits, each
    split in its own shuffle order (one window over both; split: (frame, {split: rows}, the order's bucket sizes
    or None); layout: (seed, W)). A regression label is written standardised (label_stats: the train split's
    mean and std).

    The ordered frame is cached: the first write computes the order of both splits, the other three read it.
    The encoded rows go straight into the workers' partitions: written once, never read back to be split."""
    from pyspark.sql import functions as F

    df, sizes, buckets = split
    seed, workers = layout
    label = F.col("_label").cast("double")
    if label_stats:
        label = (label - F.lit(label_stats["mean"])) / F.lit(label_stats["std"])
    ordered = _with_orders(df, seed, sizes, buckets).persist()
    try:
        for split_name, is_val in (("train", False), ("val", True)):
            part = ordered.filter(F.col("_is_val") == F.lit(is_val))
            _write_partitioned(part.select(features.alias("features"), label.alias("label"), "_order"),
                               data.engine_url(split_name), workers)
            part.select(*raw, "_order").write.mode("overwrite").parquet(data.engine_url("raw", split_name))
    finally:
        ordered.unpersist()


def _write_partitioned(df, url: str, workers: int) -> None:
    """`df` (features, label, _order) as `workers` Parquet partitions: row i to partition i % W, one file per
    partition directory, its rows in _order, so a reader takes them as they are (no reordering copy). The
    writer of a partitioned table sorts by the partition column unless the rows already are: sorted by _order
    alone, they were re-sorted by _partition only, and _order was lost."""
    from pyspark.sql import functions as F

    df = df.withColumn("_partition", (F.col("_order") % F.lit(workers)).cast("int"))
    (df.repartition(workers, "_partition").sortWithinPartitions("_partition", "_order")
       .write.mode("overwrite").partitionBy("_partition").parquet(url))


def partition_layout(rows: dict, workers: int) -> dict:
    """meta.json's "workers" and "counts" ({split: rows per partition}) for splits of {split: rows} rows: _order
    runs 0..n-1 and partition w holds the i with i % W == w."""
    return {"workers": workers,
            "counts": {split: [n // workers + (1 if w < n % workers else 0) for w in range(workers)]
                       for split, n in rows.items()}}


def internal_names(spec: StudySpec) -> dict[str, str]:
    """Source column → a plain internal name. Users' names may hold dots, spaces, backticks or unicode, which
    Spark expressions and Parquet writers treat specially; past the first select only these names are used."""
    d = spec.data
    names = {d.label: "_y"}
    names.update({c: f"_n{i}" for i, c in enumerate(d.numeric)})
    names.update({c: f"_d{i}" for i, c in enumerate(d.datetime)})
    names.update({c: f"_k{i}" for i, c in enumerate(d.categorical)})
    names.update({a.name: f"_a{i}" for i, a in enumerate(d.arrays)})
    if d.validation_column:
        names[d.validation_column] = "_v"
    return names


def column(name: str):
    """A reference to a source column by its exact name (no dot-as-struct-field, no other parsing)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def _split_description(spec: StudySpec) -> dict:
    d = spec.data
    if d.validation_column:
        return {"method": "column", "column": d.validation_column}
    stratified = d.stratify and d.task != "regression"
    return {"method": "stratified" if stratified else "random", "fraction": d.validation_fraction}


def _raw_dtypes(spec: StudySpec, source) -> dict[str, str]:
    """Each feature's and the label's type as users' rows hold it (the registered model's signature). A numeric
    column read as text (a CSV column with NA tokens) is a double, as pandas reads it."""
    d = spec.data
    out = {}
    for c in [*d.feature_columns, d.label]:
        t = _dtype_name(source.schema[c].dataType)
        out[c] = "double" if c in d.numeric and t not in ("long", "boolean") else t
    for c in d.datetime:
        out[c] = "datetime"  # kept as ISO text in raw/, parsed at encoding
    if d.task == "regression" and out[d.label] == "string":
        out[d.label] = "double"  # a CSV label column with NA tokens is read as text
    return out


def _dtype_name(t) -> str:
    """The source type as the registered model's signature states it."""
    from pyspark.sql import types as T

    if isinstance(t, T.BooleanType):
        return "boolean"
    if isinstance(t, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return "long"
    if isinstance(t, T.NumericType):
        return "double"
    if isinstance(t, T.ArrayType):
        return "array"
    return "string"


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
    for name in d.datetime:
        t = fields[name]
        if not isinstance(t, (T.StringType, T.DateType, T.TimestampType, T.TimestampNTZType)):
            raise DataError(f"data.datetime.{name}", f"column {name!r} has type {t.simpleString()}, not a date or "
                            "time", f"move {name!r} to data.numeric or data.categorical, or store ISO 8601 dates")
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

    c = F.trim(column(name))
    bad = (df.select(c.alias("v"))
             .filter(F.col("v").isNotNull() & ~F.col("v").isin(*NA_TOKENS)
                     & ~F.lower(F.col("v")).isin("true", "false") & _try_double(F.col("v")).isNull())
             .limit(1).collect())
    return bad[0]["v"] if bad else None


def _try_double(c):
    """null for unparseable strings; plain cast() raises under ANSI mode (the Spark 4 default)."""
    return c.try_cast("double") if hasattr(c, "try_cast") else c.cast("double")


def _select_and_cast(spec: StudySpec, df, names: dict[str, str]):
    """Keep the spec's columns under internal names: numerics as double (NA tokens, NaN and ±Inf as null;
    true/false as 1/0), datetime columns as their parts (year, month, ... as doubles, null when missing or
    unparseable) plus the text itself for raw/, arrays flat array<double>; categoricals, the label and the
    validation column keep their type (strings, numbers, booleans) so that categories compare to the user's
    raw values as they are, with NA tokens as null and true/false text in lower case."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    d = spec.data
    plain = (T.StringType, T.NumericType, T.BooleanType)
    cols = []
    for n in [d.label, *d.categorical]:
        c, t = column(n), df.schema[n].dataType
        if n == d.label and d.task == "regression":
            cols.append(_as_number(c, t).alias(names[n]))
            continue
        if not isinstance(t, plain) or isinstance(t, T.DecimalType):
            c, t = c.cast("string"), T.StringType()
        cols.append(_categorical_value(c, t).alias(names[n]))
    for n in d.numeric:
        cols.append(_as_number(column(n), df.schema[n].dataType).alias(names[n]))
    for n in d.datetime:
        ts = _as_timestamp(column(n), df.schema[n].dataType)
        cols.append(F.when(ts.isNotNull(), F.date_format(ts, "yyyy-MM-dd HH:mm:ss")).alias(names[n]))
        cols += [_datetime_part(ts, part).alias(f"{names[n]}_{part}") for part in DATETIME_PARTS]
    for a in d.arrays:
        c, t = column(a.name), df.schema[a.name].dataType
        while isinstance(t.elementType, T.ArrayType):  # nested lists [[..],[..]] → one flat list
            c, t = F.flatten(c), T.ArrayType(t.elementType.elementType)
        cols.append(c.cast("array<double>").alias(names[a.name]))
    if d.validation_column:
        v, t = column(d.validation_column), df.schema[d.validation_column].dataType
        if isinstance(t, T.StringType):
            v = F.lower(F.trim(v))
        cols.append(v.cast("boolean").alias("_v"))
    return df.select(*cols)


def _as_number(c, t):
    """A double, or null for a missing value (NA token, NaN, ±Inf): text is trimmed, true/false are 1/0."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(t, T.StringType):
        text = F.lower(F.trim(c))
        c = (F.when(F.trim(c).isin(*NA_TOKENS), None).when(text == "true", "1").when(text == "false", "0")
             .otherwise(F.trim(c)))
        c = _try_double(c)
    else:
        c = c.cast("double")
    return F.when(F.isnan(c) | (F.abs(c) == float("inf")), None).otherwise(c)


def _categorical_value(c, t):
    """Categories as pandas.read_csv gives them: NA tokens are null, and true/false text in any case is one
    value, "true"/"false" (a boolean at serving matches it)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(t, T.StringType):
        low = F.lower(c)
        return F.when(c.isin(*NA_TOKENS), None).when(low.isin("true", "false"), low).otherwise(c)
    if isinstance(t, (T.FloatType, T.DoubleType)):
        return F.when(F.isnan(c), None).otherwise(c)
    return c


def _as_timestamp(c, t):
    """A timestamp (null when missing or not ISO 8601): text is parsed as Spark casts strings, dates count
    from midnight."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(t, T.StringType):
        return F.when(c.isin(*NA_TOKENS), None).otherwise(F.trim(c)).try_cast("timestamp")
    return c.cast("timestamp")


def _datetime_part(ts, part: str):
    from pyspark.sql import functions as F

    if part == "day_of_week":  # Monday = 0 ... Sunday = 6, as pandas counts (Spark's dayofweek: Sunday = 1)
        value = (F.dayofweek(ts) + 5) % 7
    else:
        value = {"year": F.year, "month": F.month, "day": F.dayofmonth, "hour": F.hour}[part](ts)
    return value.cast("double")


def _check_array_shapes(spec: StudySpec, df, names: dict[str, str], wrong: dict[str, int]) -> None:
    """Refuse array columns whose rows (those kept) hold another number of elements than declared. `wrong`:
    count_missing's labelled rows with such an array per column; only a column with some is looked into (the
    sizes found, for the error), so well-shaped arrays cost no job of their own."""
    from pyspark.sql import functions as F

    for a in spec.data.arrays:
        if not wrong.get(a.name):
            continue
        want = math.prod(a.shape)
        bad = (df.filter(F.col(names[a.name]).isNotNull())
                 .groupBy(F.size(names[a.name]).alias("n")).count().filter(F.col("n") != want)
                 .orderBy(F.desc("count")).limit(3).collect())
        if bad:
            seen = ", ".join(f"{r['count']} rows with {r['n']}" for r in bad)
            raise DataError(f"data.arrays.{a.name}", f"every row must hold {want} elements (shape "
                            f"{list(a.shape)}), but found {seen}",
                            "fix the declared shape or drop the malformed rows from the source")


def _encode_label(spec: StudySpec, df, label: str, classes: list | None = None) -> tuple[Any, list]:
    """Adds `_label` (numeric) and returns the sorted original classes ([] for regression). `classes`: the
    distinct labels of `df` when already known (missing.count_missing), else they are looked up."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    d = spec.data
    t = df.schema[label].dataType
    if d.task == "regression":
        if not isinstance(t, (T.NumericType, T.BooleanType)):
            raise DataError("data.label", f"regression needs a numeric label, {d.label!r} is {t.simpleString()}",
                            "use task binary/multiclass, or a numeric label column")
        return df.withColumn("_label", F.col(label).cast("double")), []
    if classes is None:
        classes = [r[0] for r in df.select(label).distinct().limit(MAX_CLASSES + 1).collect()]
    classes = sorted(classes)
    if len(classes) > MAX_CLASSES:
        raise DataError("data.task", f"label {d.label!r} has more than {MAX_CLASSES} distinct values",
                        "use task: regression for a continuous label, or bucket the label")
    if len(classes) < 2:
        raise DataError("data.label", f"label {d.label!r} has a single class ({classes[0]!r}) after cleaning",
                        "a classifier needs at least two classes: check the data or the label column")
    if d.task == "binary" and len(classes) > 2:
        raise DataError("data.task", f"binary task but label {d.label!r} has {len(classes)} distinct values "
                        f"(e.g. {classes[:5]})", "set data.task: multiclass (or regression)")
    # Index in the sorted class list: 0/1 stays 0/1, booleans give False→0, True→1, "no"/"yes" → 0/1.
    lookup = F.array(*[F.lit(c) for c in classes]).cast(T.ArrayType(t))
    df = df.withColumn("_label", (F.array_position(lookup, F.col(label)) - 1).cast("double"))
    return df, [_jsonable(c) for c in classes]


def _jsonable(v):
    return v.item() if hasattr(v, "item") else v


# ---------------------------------------------------------------------------- split and shuffle order
#
# Both are functions of the rows' content and the seed only (never of file layout, core count or rand()),
# and neither passes all rows through one task: windows are partitioned by hash buckets of at most
# ~ROWS_PER_GROUP rows. Identical rows are told apart by their ordinal among their copies, so that copies
# spread over train and validation (and over the shuffle order) like any other rows.

ROWS_PER_GROUP = 50_000


def _content_hashes(spec: StudySpec, df, names: dict[str, str], tag: str):
    from pyspark.sql import functions as F

    content = [F.col(names[c]) for c in [spec.data.label, *spec.data.feature_columns]]
    return (F.xxhash64(F.lit(spec.seed), F.lit(tag), *content),
            F.xxhash64(F.lit(spec.seed), F.lit(tag + "/tie"), *content))


def _with_split(spec: StudySpec, df, names: dict[str, str], total: int):
    """Adds `_is_val`, `_h` (content hash) and `_copy` (ordinal among identical rows).

    Default: within each group (class × hash bucket for classification, hash bucket for regression) rows are
    ordered by a seeded content hash, and systematic sampling with a seeded random offset marks every
    (1/fraction)-th row as validation. Each group, and each run of identical rows inside it, gets
    floor or ceil of fraction × its size: the split is stratified by class and duplicates are spread.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    d = spec.data
    h, tie = _content_hashes(spec, df, names, "split")
    df = df.withColumn("_h", h).withColumn("_tie", tie)
    if d.validation_column:
        df = df.withColumn("_copy", F.row_number().over(Window.partitionBy("_h", "_tie").orderBy("_h")) - 1)
        return df.withColumn("_is_val", F.col("_v")).drop("_tie", "_v")
    buckets = max(1, math.ceil(total / ROWS_PER_GROUP))
    stratum = F.col("_label") if d.stratify and d.task != "regression" else F.lit(0.0)
    df = df.withColumn("_stratum", stratum).withColumn("_bucket", F.pmod(F.col("_h"), F.lit(buckets)))
    # One window (one shuffle and sort) gives both the rank and the copy ordinal: identical rows share their
    # label and hash, so they sit together in one group, and rank() is the row number of the first of them.
    group = Window.partitionBy("_stratum", "_bucket").orderBy("_h", "_tie")
    df = df.withColumn("_rank", F.row_number().over(group) - 1)
    df = df.withColumn("_copy", F.col("_rank") + 1 - F.rank().over(group))
    rank = F.col("_rank")
    offset = F.pmod(F.xxhash64(F.lit(spec.seed), F.lit("offset"), "_stratum", "_bucket"),
                    F.lit(_HASH_BUCKETS)) / _HASH_BUCKETS
    f = F.lit(d.validation_fraction)
    is_val = F.floor(offset + (rank + 1) * f) > F.floor(offset + rank * f)
    return df.withColumn("_is_val", is_val).drop("_tie", "_stratum", "_bucket", "_rank")


def _order_buckets(rows: dict) -> dict:
    """{split: number of hash buckets of its shuffle order} for {split: rows}."""
    return {split: max(1, math.ceil(n / ROWS_PER_GROUP)) for split, n in rows.items()}


def _order_key(seed: int):
    from pyspark.sql import functions as F

    return F.xxhash64(F.lit(seed), F.lit("order"), "_h", "_copy")


def _with_orders(df, seed: int, rows: dict, sizes: dict | None = None):
    """Adds `_order`, each split's dense 0..n-1 shuffle order (`_is_val`: false for train, true for validation;
    rows: {split: size}): rank by a seeded hash of (content, copy ordinal) within hash buckets of the split,
    offset by the sizes of the buckets before, so no global window. A split of at most ROWS_PER_GROUP rows is
    one bucket (offset 0); the sizes of the others' buckets ({(is_val, bucket): rows}) are `sizes` when the
    statistics' pass counted them (_bucket_sizes), else they come from one small count."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    buckets = _order_buckets(rows)
    df = df.withColumn("_key", _order_key(seed))
    bucket = F.when(F.col("_is_val"), F.pmod(F.col("_key"), F.lit(buckets["val"]))) \
        .otherwise(F.pmod(F.col("_key"), F.lit(buckets["train"])))
    df = df.withColumn("_bucket", bucket.cast("int"))
    if sizes is None:
        sizes = {}
        if any(b > 1 for b in buckets.values()):
            sizes = {(r["_is_val"], r["_bucket"]): r["count"]
                     for r in df.groupBy("_is_val", "_bucket").count().collect()}
    starts = {}
    for split, is_val in (("train", False), ("val", True)):
        acc, starts[split] = 0, []
        for b in range(buckets[split]):
            starts[split].append(acc)
            acc += sizes.get((is_val, b), 0)
    rank = F.row_number().over(Window.partitionBy("_is_val", "_bucket").orderBy("_key", "_h", "_copy")) - 1
    start = F.when(F.col("_is_val"), F.element_at(F.array(*[F.lit(s) for s in starts["val"]]), F.col("_bucket") + 1)) \
        .otherwise(F.element_at(F.array(*[F.lit(s) for s in starts["train"]]), F.col("_bucket") + 1))
    return df.withColumn("_order", (start + rank).cast("long")).drop("_key", "_bucket")


# At most this many bucket counts ride along with the statistics' aggregation; beyond it (tens of millions of
# rows, or a user's validation column on millions) the order's bucket sizes come from a count of their own.
MAX_BUCKET_COUNTS = 256


def _order_candidates(spec: StudySpec, total: int, classes: list) -> dict | None:
    """{split: the bucket numbers above 1 its shuffle order may have}, before the split sizes are known: a
    seeded split gives each of its groups (stratum x hash bucket) floor or ceil of fraction x its size, so the
    validation side is within one row per group of fraction x total; a validation column may hold any share.
    None when counting every candidate's buckets would take more than MAX_BUCKET_COUNTS counts."""
    d = spec.data
    if d.validation_column:
        low, high = 0, total
    else:
        strata = len(classes) if d.stratify and d.task != "regression" else 1
        groups = max(1, strata) * max(1, math.ceil(total / ROWS_PER_GROUP))
        centre = d.validation_fraction * total
        low, high = max(0, math.floor(centre) - groups - 1), min(total, math.ceil(centre) + groups + 1)
    out = {"val": range(_order_buckets({"n": low})["n"], _order_buckets({"n": high})["n"] + 1),
           "train": range(_order_buckets({"n": total - high})["n"], _order_buckets({"n": total - low})["n"] + 1)}
    out = {split: [b for b in bs if b > 1] for split, bs in out.items()}
    if sum(b for bs in out.values() for b in bs) > MAX_BUCKET_COUNTS:
        return None
    return out


def _bucket_count_aggs(seed: int, candidates: dict | None) -> list:
    """The counts of rows per (split, candidate bucket number, bucket) of the shuffle order's hash buckets."""
    from pyspark.sql import functions as F

    aggs = []
    for split, numbers in (candidates or {}).items():
        side = F.col("_is_val") if split == "val" else ~F.col("_is_val")
        for b in numbers:
            bucket = F.pmod(_order_key(seed), F.lit(b))
            aggs += [F.count(F.when(side & (bucket == j), 1)).alias(f"o_{split}_{b}_{j}") for j in range(b)]
    return aggs


def _bucket_sizes(row, candidates: dict | None, rows: dict) -> dict | None:
    """{(is_val, bucket): rows} of the order's buckets now that the split sizes are known, from the
    statistics' row; None when they were not counted there."""
    if candidates is None:
        return None
    sizes = {}
    for split, b in _order_buckets(rows).items():
        if b == 1:
            continue
        if b not in candidates[split]:
            return None  # outside the bounds (cannot happen for a seeded split): count them
        sizes.update({(split == "val", j): int(row[f"o_{split}_{b}_{j}"]) for j in range(b)})
    return sizes


# Six parameters: the spec and the five pieces of the learned encoding that lay the vector out.
def _feature_exprs(spec: StudySpec, stats: dict, categories: dict, names: dict[str, str], indicators: list,
                   missing_slots: list):
    """One array<float> column: standardised numerics and datetime parts (a missing value imputed with the
    train median, then a 0/1 <missing> slot where train had one), one-hot categoricals (+<missing> where
    train had one, +<other>), flattened arrays. Also the name of every slot and each source column's
    [start, end) span in the vector (encoding.Encoding lays it out the same way)."""
    from pyspark.sql import functions as F

    d = spec.data
    scalars, slot_names, spans = [], [], {}
    for n, parts in missing.numeric_slots(spec, names):
        start = len(slot_names)
        for slot, internal in parts:
            s = stats[slot]
            value = F.coalesce(F.col(internal), F.lit(s["fill"]))
            scalars.append((value - F.lit(s["mean"])) / F.lit(s["std"]))
            slot_names.append(slot)
        if n in indicators:
            scalars.append(F.col(parts[0][1]).isNull().cast("double"))
            slot_names.append(f"{n}={MISSING}")
        spans[n] = [start, len(slot_names)]
    for n in d.categorical:
        c, values = F.col(names[n]), categories[n]
        start = len(slot_names)
        for v in values:
            scalars.append(F.coalesce(c == F.lit(v), F.lit(False)).cast("double"))
            slot_names.append(f"{n}={v}")
        known = c.isin(*values) if values else F.lit(False)
        if n in missing_slots:
            scalars.append(c.isNull().cast("double"))
            slot_names.append(f"{n}={MISSING}")
            other = c.isNotNull() & ~known
        else:  # a missing value (never seen in train) counts as <other>
            other = c.isNull() | ~known
        scalars.append(F.coalesce(other, F.lit(True)).cast("double"))
        slot_names.append(f"{n}={OTHER}")
        spans[n] = [start, len(slot_names)]
    parts = [F.array(*scalars)] if scalars else []
    for a in d.arrays:
        parts.append(F.col(names[a.name]))
        size = math.prod(a.shape)
        spans[a.name] = [len(slot_names), len(slot_names) + size]
        slot_names += [f"{a.name}[{i}]" for i in range(size)]
    combined = parts[0] if len(parts) == 1 else F.concat(*parts)
    return combined.cast("array<float>"), slot_names, spans


def _input_shape(spec: StudySpec, n_features: int) -> list[int]:
    d = spec.data
    if len(d.feature_columns) == 1 and len(d.arrays) == 1:
        return list(d.arrays[0].shape)
    return [n_features]


# ============================================================================ partition (Spark)

def partition(spark, spec: StudySpec, data: Store, workers: int) -> dict:
    """The prepared data's meta with `workers` balanced Parquet partitions per split (row i → partition i % W).
    prepare writes them: this runs no Spark job then. A run prepared by an earlier version (encoded rows in
    prepared/<split>) is split here."""
    if workers < 1:
        raise DataError("train.workers", f"{workers} workers", "use at least one worker")
    meta = data.read_json("meta.json")
    if meta.get("workers") == workers:
        return meta
    if meta.get("workers") is not None:
        raise DataError("train.workers", f"{workers} workers, but this run's data was prepared for "
                        f"{meta['workers']}", f"start a new run, or set train.workers: {meta['workers']}")
    with _sql_conf(spark, PREPARE_SQL_CONF):
        return _partition(spark, data, workers, meta)


# The columns of prepared/<split>, as prepare wrote them before it wrote the workers' partitions.
PREPARED_SCHEMA = "features array<float>, label double, _order long"


def _partition(spark, data: Store, workers: int, meta: dict) -> dict:
    for split in ("train", "val"):  # the schema prepare wrote: reading it needs no Spark job
        df = spark.read.schema(PREPARED_SCHEMA).parquet(data.engine_url("prepared", split))
        _write_partitioned(df, data.engine_url(split), workers)
    meta.update(partition_layout({split: int(meta["rows"][split]) for split in ("train", "val")}, workers))
    data.write_json("meta.json", meta)
    return meta
