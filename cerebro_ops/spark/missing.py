"""Missing values in prepare: count them in one pass, apply the spec's policy (impute | drop | error), and
learn the numeric statistics (mean, std, the median that imputes) on the train split in one more
(learn.py runs that aggregation together with the category counts).

A value is missing when it is null, an NA token of pandas.read_csv, NaN or ±Inf (prepare._select_and_cast has
turned all of these into null). Only rows without a label are always dropped; every count goes into meta.json's
`summary` (prepare_summary.py), which the CLI, MLflow and the study pages show.
"""
from __future__ import annotations

import math

from cerebro_ops.core.errors import DataError
from cerebro_ops.core.prepare_summary import worst_columns
from cerebro_ops.core.spec import DATETIME_PARTS, StudySpec

# A numeric column whose std is this small next to its mean is constant: scaling by it would turn float noise
# (or any new value at serving) into huge inputs, so it is scaled by max(|mean|, 1) instead.
CONSTANT_RELATIVE_STD = 1e-6
# percentile_approx accuracy of the imputed median: relative error 1 / accuracy of the rank.
MEDIAN_ACCURACY = 10_000


def _missing_flag(spec: StudySpec, names: dict[str, str], column: str):
    """True where `column` (a source feature column) is missing in the selected frame."""
    from pyspark.sql import functions as F

    d = spec.data
    if column in d.datetime:
        return F.col(f"{names[column]}_{DATETIME_PARTS[0]}").isNull()
    c = F.col(names[column])
    if any(a.name == column for a in d.arrays):
        return c.isNull() | F.exists(c, lambda x: x.isNull() | F.isnan(x))
    return c.isNull()


def count_missing(spec: StudySpec, df, names: dict[str, str]) -> dict:
    """{"rows": rows read, "label": rows without a label, "columns": {feature: labelled rows missing it},
    "any": labelled rows missing any feature, "classes": the label values of the rows that apply_policy
    keeps (None for regression, or when there are more than MAX_CLASSES), "wrong_shape": {array column:
    labelled rows whose array has another number of elements than its declared shape}}, in one aggregation: per
    label value for a classifier, so that its classes come from the same pass."""
    from pyspark.sql import functions as F

    from cerebro_ops.data.source import MAX_CLASSES

    d = spec.data
    label = F.col(names[d.label])
    labelled = label.isNotNull()
    flags = {c: _missing_flag(spec, names, c) for c in d.feature_columns}
    any_missing = F.lit(False)
    for flag in flags.values():
        any_missing = any_missing | flag
    aggs = [F.count(F.lit(1)).alias("rows"), F.count(F.when(~labelled, 1)).alias("label")]
    aggs += [F.count(F.when(labelled & flag, 1)).alias(f"c{i}") for i, flag in enumerate(flags.values())]
    aggs.append(F.count(F.when(labelled & any_missing, 1)).alias("any"))
    for i, a in enumerate(d.arrays):
        c = F.col(names[a.name])
        aggs.append(F.count(F.when(labelled & c.isNotNull() & (F.size(c) != math.prod(a.shape)), 1)).alias(f"s{i}"))
    shapes = [f"s{i}" for i in range(len(d.arrays))]
    groups, classes = None, None
    if d.task != "regression":
        aggs.append(F.count(F.when(~any_missing, 1)).alias("complete"))
        groups = df.groupBy(label.alias("_value")).agg(*aggs).limit(MAX_CLASSES + 2).collect()
        if len(groups) > MAX_CLASSES + 1:  # too many to be classes: plain totals, and prepare says why
            groups = None
    if groups is None:
        groups = [df.agg(*aggs).collect()[0]]
    else:
        keep = "complete" if d.missing == "drop" else "rows"
        classes = [g["_value"] for g in groups if g["_value"] is not None and g[keep]]
    total = {k: sum(int(g[k]) for g in groups)
             for k in ["rows", "label", "any", *(f"c{i}" for i in range(len(flags))), *shapes]}
    return {"rows": total["rows"], "label": total["label"], "any": total["any"],
            "columns": {c: total[f"c{i}"] for i, c in enumerate(flags)}, "classes": classes,
            "wrong_shape": {a.name: total[f"s{i}"] for i, a in enumerate(d.arrays)}}


def apply_policy(spec: StudySpec, df, names: dict[str, str], counts: dict) -> tuple:
    """(rows to train on, {reason: rows dropped}). Rows without a label go; `error` refuses any missing
    feature value and `drop` drops its row, refusing when more than max_dropped_share of the labelled rows go."""
    from pyspark.sql import functions as F

    d = spec.data
    df = df.filter(F.col(names[d.label]).isNotNull())
    dropped = {"missing label": counts["label"]}
    labelled = counts["rows"] - counts["label"]
    worst = worst_columns(counts["columns"])
    if d.missing == "error" and counts["any"]:
        raise DataError("data.missing", f"{counts['any']} of {labelled} labelled rows have a missing feature "
                        f"value ({worst})", "fill the missing values in the source, or set data.missing: impute "
                        "(median + a missing indicator, a <missing> category) or drop")
    if d.missing == "drop":
        share = counts["any"] / labelled if labelled else 0.0
        if share > d.max_dropped_share:
            raise DataError("data.missing", f"dropping rows with a missing value would lose {counts['any']} of "
                            f"{labelled} labelled rows ({share:.1%}, more than data.max_dropped_share "
                            f"{d.max_dropped_share:.1%}); most missing: {worst}",
                            "set data.missing: impute (the default), or remove those columns from the spec")
        for c in d.feature_columns:
            df = df.filter(~_missing_flag(spec, names, c))
        dropped["missing feature"] = counts["any"]
    return df, dropped


def fill_arrays(spec: StudySpec, df, names: dict[str, str]):
    """Impute: a missing array is all zeros and a missing (null/NaN) element is 0, as encoding.py does."""
    from pyspark.sql import functions as F

    for a in spec.data.arrays:
        c, size = F.col(names[a.name]), math.prod(a.shape)
        filled = F.transform(c, lambda x: F.when(x.isNull() | F.isnan(x), F.lit(0.0)).otherwise(x))
        df = df.withColumn(names[a.name], F.coalesce(filled, F.array_repeat(F.lit(0.0), size)))
    return df


def stats_aggs(spec: StudySpec, names: dict[str, str]) -> list:
    """The aggregate expressions of the numeric statistics, over a frame holding both splits (`_is_val`):
    read_stats reads them from the aggregation's row.

    Every statistic reads `when(train, x)`: a validation row gives null, which each aggregate skips, so each
    partition's partial aggregate sees the same train values in the same order as over a filtered frame."""
    from pyspark.sql import functions as F

    is_train = ~F.col("_is_val")
    columns = numeric_slots(spec, names)
    slots = [(slot, internal) for _, parts in columns for slot, internal in parts]
    aggs = [F.count(F.when(is_train, 1)).alias("train_rows"), F.count(F.when(~is_train, 1)).alias("val_rows")]
    for i, (_, internal) in enumerate(slots):
        x = F.when(is_train, F.col(internal))
        aggs += [F.mean(x).alias(f"m{i}"), F.stddev_pop(x).alias(f"s{i}"),
                 F.percentile_approx(x, 0.5, MEDIAN_ACCURACY).alias(f"q{i}")]
    aggs += [F.count(F.when(is_train & F.col(parts[0][1]).isNull(), 1)).alias(f"n{j}")
             for j, (_, parts) in enumerate(columns)]
    if spec.data.task == "regression":
        label = F.when(is_train, F.col("_label"))
        aggs += [F.mean(label).alias("lm"), F.stddev_pop(label).alias("ls")]
    return aggs


def read_stats(spec: StudySpec, names: dict[str, str], row) -> tuple[dict, dict | None, list, dict]:
    """From the row of stats_aggs, learnt on the train split: ({slot: {mean, std, fill, constant}} for every
    numeric column and datetime part; the regression label's {mean, std} (None otherwise); the numeric/datetime
    columns with a missing value, which get a 0/1 indicator; {"train": rows, "val": rows}). `fill` is the
    median (None unless data.missing is impute: the model then has no way to answer a missing value)."""
    d = spec.data
    columns = numeric_slots(spec, names)
    slots = [slot for _, parts in columns for slot, _ in parts]
    stats = {}
    for i, slot in enumerate(slots):
        mean, std = _scale(row[f"m{i}"], row[f"s{i}"])
        median = row[f"q{i}"]
        stats[slot] = {"mean": mean, "std": std, "constant": std != (row[f"s{i}"] or 0.0),
                       "fill": (float(median) if median is not None else mean) if d.missing == "impute" else None}
    indicators = [c for j, (c, _) in enumerate(columns) if row[f"n{j}"] and d.missing == "impute"]
    label_stats = None
    if d.task == "regression":
        mean, std = _scale(row["lm"], row["ls"])
        label_stats = {"mean": mean, "std": std}
    return stats, label_stats, indicators, {"train": int(row["train_rows"]), "val": int(row["val_rows"])}


def _scale(mean, std) -> tuple[float, float]:
    """(mean, the std to divide by): a column with no values scales by 1 around 0; a constant one (std 0 or
    tiny next to its mean) by max(|mean|, 1), so no value is blown up by float noise."""
    mean = float(mean) if mean is not None else 0.0
    std = float(std) if std is not None else 0.0
    if not std > CONSTANT_RELATIVE_STD * max(abs(mean), 1.0):
        return mean, max(abs(mean), 1.0)
    return mean, std


def numeric_slots(spec: StudySpec, names: dict[str, str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(source column, [(slot name, internal column)])] of the numeric and datetime columns: a numeric column
    is one slot, a datetime column one per part ("when.year", ...)."""
    d = spec.data
    return ([(n, [(n, names[n])]) for n in d.numeric]
            + [(n, [(f"{n}.{p}", f"{names[n]}_{p}") for p in DATETIME_PARTS]) for n in d.datetime])
