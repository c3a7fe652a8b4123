"""What prepare learns from the split data, in one Spark job: the numeric statistics, the split sizes and any
extra counts (missing.stats_aggs: one global aggregation) and the top categories of the train split (one
grouping-sets aggregation ranked on the executors), unioned into one query that is collected once.

Each side runs the plan it would run on its own (the union only puts both under one job), so the statistics
are the same to the last bit as from two separate collects.
"""
from __future__ import annotations

from cerebro_ops.core.spec import StudySpec
from cerebro_ops.spark import missing

STATS = "_stats"  # the one column of the global aggregation's row (a struct of every statistic)


def learn(spec: StudySpec, df, names: dict[str, str], extra: list | None = None) -> dict:
    """{"stats", "label_stats", "indicators", "rows"} as missing.read_stats gives them; {"categories",
    "missing_slots", "cardinality"} as read_categories; and "extra": the row of the global aggregation, where
    the `extra` aggregate expressions (named with .alias) can be read. `df` holds both splits (`_is_val`)."""
    from pyspark.sql import functions as F

    stats = df.agg(F.struct(*missing.stats_aggs(spec, names), *(extra or [])).alias(STATS))
    counts = category_counts(spec, df.filter(~F.col("_is_val")), names)
    query = stats if counts is None else counts.unionByName(stats, allowMissingColumns=True)
    rows = query.collect()
    row = next(r[STATS] for r in rows if r[STATS] is not None)
    stats_out, label_stats, indicators, sizes = missing.read_stats(spec, names, row)
    categories, missing_slots, cardinality = read_categories(spec, [r for r in rows if r[STATS] is None], names)
    return {"stats": stats_out, "label_stats": label_stats, "indicators": indicators, "rows": sizes,
            "categories": categories, "missing_slots": missing_slots, "cardinality": cardinality, "extra": row}


def category_counts(spec: StudySpec, train, names: dict[str, str]):
    """Per categorical column on `train`, the rows of its top max_categories values (ties broken by value) and
    of its missing value, each with the column's totals; None without categorical columns.

    The value counts of every column come from one aggregation (grouping sets, one per column, each in the
    column's own type), ranked per column on the executors: only the top values and the totals reach the
    driver. Columns: `_col` (the column's index), the internal column holding the value, `_count`, `_null`,
    `_distinct`, `_rows` (non-missing rows), `_nulls`, `_rank`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    cats = [names[n] for n in spec.data.categorical]
    if not cats:
        return None
    counts = (train.groupingSets([[c] for c in cats], *cats)
              .agg(F.count(F.lit(1)).alias("_count"), *[F.grouping(c).alias(f"_g{i}") for i, c in enumerate(cats)]))
    which = F.coalesce(*[F.when(F.col(f"_g{i}") == 0, F.lit(i)) for i in range(len(cats))])
    counts = counts.withColumn("_col", which).drop(*[f"_g{i}" for i in range(len(cats))])
    missing_value = F.coalesce(*[F.when(F.col("_col") == i, F.col(c).isNull()) for i, c in enumerate(cats)])
    counts = counts.withColumn("_null", missing_value)
    per_column = Window.partitionBy("_col")
    ranked = Window.partitionBy("_col", "_null").orderBy(F.desc("_count"), *[F.asc(c) for c in cats])
    return (counts
            .withColumn("_distinct", F.count(F.when(~F.col("_null"), 1)).over(per_column))
            .withColumn("_rows", F.sum(F.when(~F.col("_null"), F.col("_count"))).over(per_column))
            .withColumn("_nulls", F.sum(F.when(F.col("_null"), F.col("_count"))).over(per_column))
            .withColumn("_rank", F.row_number().over(ranked))
            .filter((F.col("_rank") <= spec.data.max_categories) | (F.col("_rank") == 1)))


def read_categories(spec: StudySpec, rows: list, names: dict[str, str]) -> tuple[dict, list, dict]:
    """From category_counts' rows: {column: its top values in their own type, sorted}; the columns with a
    missing value on the train split (they get a <missing> slot); {column: {"distinct": values, "kept": top
    values, "other_rows": train rows falling into <other>}}."""
    out, with_missing, cardinality = {}, [], {}
    for i, n in enumerate(spec.data.categorical):
        c = names[n]
        mine = [r for r in rows if r["_col"] == i]
        top = sorted((r for r in mine if not r["_null"] and r["_rank"] <= spec.data.max_categories),
                     key=lambda r: r["_rank"])
        totals = mine[0] if mine else None
        out[n] = sorted(_jsonable(r[c]) for r in top)
        if totals is not None and totals["_nulls"]:
            with_missing.append(n)
        kept = sum(r["_count"] for r in top)
        cardinality[n] = {"distinct": int(totals["_distinct"] or 0) if totals is not None else 0,
                          "kept": len(top),
                          "other_rows": int(((totals["_rows"] or 0) if totals is not None else 0) - kept)}
    return out, with_missing, cardinality


def _jsonable(v):
    return v.item() if hasattr(v, "item") else v
