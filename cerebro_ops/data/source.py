"""Pre-flight of the data source against the spec, with pyarrow only (no Spark): cheap, run before any work.

Everything the schema can tell is checked here, so that `cerebro-ops validate` rejects it; Spark's prepare
step re-checks only what needs a full pass over the rows.
"""
from __future__ import annotations

import os
from pathlib import Path

from cerebro_ops.core.encoding import NA_TOKENS
from cerebro_ops.core.errors import DataError
from cerebro_ops.core.spec import StudySpec


# More distinct labels than this is almost surely a continuous (regression) label.
MAX_CLASSES = 1000


# ============================================================================ source resolution

def source_uri(source: str) -> str:
    """Relative paths resolve against the current working directory (the repo root when run from it)."""
    if "://" in source:
        return source
    return Path(source).expanduser().resolve().as_uri()


def _fs_and_path(source: str):
    from cerebro_ops.store import filesystem_for  # the source may lie outside the store: any URI

    return filesystem_for(source_uri(source))


# ============================================================================ pre-flight (no Spark)

def check_source(spec: StudySpec) -> None:
    """Cheap pre-flight of the source against the spec, with pyarrow only. Raises DataError."""
    d = spec.data
    fs, path = _fs_and_path(d.source)
    if not fs.exists(path):
        raise DataError("data.source", f"{d.source!r} does not exist (resolved to {source_uri(d.source)})",
                        "create the file (e.g. `cerebro-ops make-data <name>`) or fix data.source; relative "
                        "paths are resolved against the current working directory")
    fmt = d.resolved_format
    columns = _read_columns(fs, path, fmt, d.source)
    _check_unique_columns(d.source, columns)
    _check_columns_present(spec, columns)
    table = _read_needed(fs, path, fmt, needed_columns(spec), d.source)
    _check_types(spec, table, fmt)
    if table.num_rows == 0:
        raise DataError("data.source", f"{d.source!r} has no rows", "point data.source at a non-empty file")
    for name in [d.label, *d.feature_columns]:
        col = table.column(name)
        if col.null_count == len(col):
            raise DataError(_field(spec, name), f"column {name!r} is entirely null ({len(col)} rows)",
                            "fill the column or remove it from the spec")
    _check_classes(spec, table.column(d.label), fmt)
    if d.validation_column is not None:
        _check_split_column(spec, table.column(d.validation_column), fmt)


def needed_columns(spec: StudySpec) -> list[str]:
    """The source columns a study reads: label, features and the split column (if any)."""
    d = spec.data
    return [d.label, *d.feature_columns, *([d.validation_column] if d.validation_column else [])]


def source_bytes(spec: StudySpec) -> int | None:
    """About how much data a study's Spark jobs go through, from file metadata only: the uncompressed bytes of
    the needed columns of a Parquet source, the size of a CSV source's files. None when it cannot be told."""
    try:
        fs, path = _fs_and_path(spec.data.source)
        if spec.data.resolved_format != "parquet":
            return sum(fs.size(p) for p in (fs.find(path) if fs.isdir(path) else [path]))
        needed = set(needed_columns(spec))
        total = 0
        for fragment in _parquet_dataset(fs, path).get_fragments():
            meta = fragment.metadata
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                total += sum(group.column(c).total_uncompressed_size for c in range(group.num_columns)
                             if group.column(c).path_in_schema.split(".")[0] in needed)
        return total
    except Exception:  # noqa: BLE001 - only a hint for the JVM's settings: check_source reports a bad source
        return None


def _field(spec: StudySpec, column: str) -> str:
    """The spec field that declares `column`, e.g. data.numeric.dep_delay."""
    d = spec.data
    if column == d.label:
        return "data.label"
    if column == d.validation_column:
        return "data.validation_column"
    if column in d.numeric:
        return f"data.numeric.{column}"
    if column in d.categorical:
        return f"data.categorical.{column}"
    if column in d.datetime:
        return f"data.datetime.{column}"
    return f"data.arrays.{column}"


def _corrupt(source: str, fmt: str, exc: Exception) -> DataError:
    msg = str(exc).splitlines()[0][:200] if str(exc) else exc.__class__.__name__
    return DataError("data.source", f"{source!r} is not a readable {fmt.upper()} file ({msg})",
                     f"re-export the file as {fmt.upper()}, or set data.format if the extension is misleading")


def _read_columns(fs, path: str, fmt: str, source: str) -> list[str]:
    """Column names only: the Parquet footer, or the CSV header line."""
    try:
        if fmt == "parquet":
            return list(_parquet_dataset(fs, path).schema.names)
        import csv
        import io

        with _open_csv(fs, path) as f:
            header = next(csv.reader(io.TextIOWrapper(f, encoding="utf-8", errors="strict")), None)
        if not header:
            raise ValueError("no header line")
        return header
    except DataError:
        raise
    except Exception as exc:  # pyarrow raises a zoo of types for a corrupt footer
        raise _corrupt(source, fmt, exc) from None


def _parquet_dataset(fs, path: str):
    import pyarrow.dataset as ds

    local = _is_local(fs)
    return ds.dataset(path, format="parquet", filesystem=None if local else fs,
                      exclude_invalid_files=False, ignore_prefixes=[".", "_"])


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _open_csv(fs, path: str):
    if fs.isdir(path):
        files = sorted(p for p in fs.find(path) if not os.path.basename(p).startswith(("_", ".")))
        if not files:
            raise ValueError(f"directory {path} holds no CSV files")
        path = files[0]
    compression = "gzip" if path.endswith(".gz") else None
    return fs.open(path, "rb", compression=compression)


def _check_unique_columns(source: str, columns: list[str]) -> None:
    """Spark (case-insensitive by default) renames duplicated CSV headers and refuses duplicated Parquet ones."""
    seen: dict[str, str] = {}
    for name in columns:
        first = seen.setdefault(name.lower(), name)
        if first is not name:
            if first == name:
                raise DataError("data.source", f"{source!r} has the column {name!r} more than once in its header",
                                "give every column a distinct name")
            raise DataError("data.source", f"{source!r} has the columns {first!r} and {name!r}, whose names "
                            "differ only in case", "give every column a distinct name: Spark does not tell "
                            "column names apart by case")


def _check_columns_present(spec: StudySpec, columns: list[str]) -> None:
    d = spec.data
    if d.label not in columns:
        raise DataError("data.label", f"label column {d.label!r} is not in the source; available columns: "
                        f"{columns}", "set data.label to one of the available columns")
    missing = [c for c in d.feature_columns if c not in columns]
    if missing:
        raise DataError(_field(spec, missing[0]), f"column(s) {missing} are not in the source; available "
                        f"columns: {columns}", "fix the column names under data.numeric/categorical/arrays")
    if d.validation_column is not None and d.validation_column not in columns:
        raise DataError("data.validation_column", f"split column {d.validation_column!r} is not in the source; "
                        f"available columns: {columns}", "name a column of true/false (or 1/0) flags, or remove "
                        "data.validation_column to split by data.validation_fraction")


def _read_needed(fs, path: str, fmt: str, names: list[str], source: str):
    """Only the spec's columns; CSV as strings so that parsing problems are ours to report, not pyarrow's."""
    import pyarrow as pa

    try:
        if fmt == "parquet":
            return _parquet_dataset(fs, path).to_table(columns=names)
        import pyarrow.csv as pcsv

        with _open_csv(fs, path) as f:
            return pcsv.read_csv(
                f, convert_options=pcsv.ConvertOptions(
                    include_columns=names, column_types={n: pa.string() for n in names},
                    null_values=list(NA_TOKENS), strings_can_be_null=True))
    except Exception as exc:
        raise _corrupt(source, fmt, exc) from None


def _check_types(spec: StudySpec, table, fmt: str) -> None:

    d = spec.data
    for name in d.numeric:
        problem = _not_numeric(table.column(name), fmt)
        if problem:
            dates = " or data.datetime" if _looks_like_dates(table.column(name)) else ""
            raise DataError(f"data.numeric.{name}", f"column {name!r} {problem}",
                            f"move {name!r} to data.categorical{dates}, or clean the column so it holds numbers")
    for name in d.categorical:
        if _looks_like_dates(table.column(name)):
            raise DataError(f"data.categorical.{name}", f"column {name!r} holds dates or times (e.g. "
                            f"{_first_value(table.column(name))!r}): as categories every moment is its own value",
                            f"move {name!r} to data.datetime (trained on as year, month, day, day of week, hour)")
    for name in d.datetime:
        _check_datetime(name, table.column(name))
    _check_label_type(spec, table.column(d.label), fmt)
    for a in d.arrays:
        col = table.column(a.name)
        if fmt == "csv":
            raise DataError(f"data.arrays.{a.name}", "CSV files cannot hold array columns",
                            "store the data as Parquet with a list<double> column")
        if not _is_numeric_list(col.type):
            raise DataError(f"data.arrays.{a.name}", f"column {a.name!r} has type {col.type}, not a list of numbers",
                            "store the array as a Parquet list<double> column")


def _looks_like_dates(col, sample: int = 200) -> bool:
    """A date/timestamp column, or text whose distinct values (a sample of them) are all ISO 8601 dates or
    times and not numbers ("2013" and "20130101" are numbers)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        return True
    if not pa.types.is_string(col.type):
        return False
    values = [v.strip() for v in pc.unique(col.drop_null()).to_pylist()[:sample]]
    return bool(values) and all(_is_iso_time(v) and not _is_number(v) for v in values)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _first_value(col):
    values = col.drop_null()
    return values[0].as_py() if len(values) else None


def _check_datetime(name: str, col) -> None:
    """A datetime column holds dates/times, as text most of whose values are ISO 8601."""
    import pyarrow as pa

    fix = (f"store {name!r} as ISO 8601 text (2024-05-31 or 2024-05-31 14:30:00) or as a date/timestamp "
           "column, or move it to data.numeric / data.categorical")
    if pa.types.is_timestamp(col.type) or pa.types.is_date(col.type):
        return
    if not pa.types.is_string(col.type):
        raise DataError(f"data.datetime.{name}", f"column {name!r} has type {col.type}, not a date or time", fix)
    values = col.drop_null()
    bad = [v for v in values.to_pylist()[:1000] if not _is_iso_time(v.strip())]
    if len(bad) > len(values.to_pylist()[:1000]) // 2:
        raise DataError(f"data.datetime.{name}", f"column {name!r} holds values that are not ISO 8601 dates or "
                        f"times (e.g. {bad[0]!r})", fix)


def _is_iso_time(text: str) -> bool:
    import datetime as dt

    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def _check_label_type(spec: StudySpec, col, fmt: str) -> None:
    """Regression trains on the label's value, so it must be a number (or a boolean)."""
    d = spec.data
    problem = _not_numeric(col, fmt) if d.task == "regression" else None
    if problem:
        raise DataError("data.label", f"task regression needs a numeric label, but {d.label!r} {problem}",
                        f"set data.task: binary or multiclass if {d.label!r} holds classes, "
                        "or set data.label to a numeric column")


def _not_numeric(col, fmt: str) -> str | None:
    """What makes a column unusable as a number (None when it is one): its type, or for CSV (read as strings)
    the first value that does not parse."""
    import pyarrow as pa

    if _is_number_type(col.type) or pa.types.is_boolean(col.type):
        return None
    if fmt == "csv" and pa.types.is_string(col.type):
        import pyarrow.compute as pc

        boolean = pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(col)), value_set=pa.array(["true", "false"]))
        bad = _unparseable(col.filter(pc.invert(boolean)))  # true/false count as 1/0
        return None if bad is None else f"holds non-numeric values such as {bad!r}"
    return f"has type {col.type}, not a number"


def _check_classes(spec: StudySpec, col, fmt: str) -> None:
    """A classifier needs 2 classes (binary: exactly 2); thousands of classes mean a continuous label."""
    d = spec.data
    if d.task == "regression":
        return
    classes = _distinct(col, fmt)
    n = len(classes)
    try:
        ordered = sorted(classes)
    except TypeError:  # mixed types cannot be compared
        ordered = sorted(classes, key=str)
    sample = [int(v) if isinstance(v, float) and v.is_integer() else v for v in ordered[:5]]
    if n < 2:
        raise DataError("data.task", f"{d.task} task but label {d.label!r} has a single class ({sample[0]!r})",
                        "a classifier needs at least two classes: check that data.label names the class column "
                        "and that the source holds every class, or use task: regression for a continuous label")
    if d.task == "binary" and n > 2:
        more = f"{n}" if n <= MAX_CLASSES else f"more than {MAX_CLASSES}"
        raise DataError("data.task", f"binary task but label {d.label!r} has {more} distinct values (e.g. "
                        f"{sample})", "set data.task: multiclass (or regression for a continuous label)")
    if n > MAX_CLASSES:
        raise DataError("data.task", f"multiclass task but label {d.label!r} has more than {MAX_CLASSES} distinct "
                        f"values (e.g. {sample})", "use task: regression for a continuous label, or bucket the "
                        f"label into at most {MAX_CLASSES} classes")


def _distinct(col, fmt: str) -> set:
    """Distinct non-null, non-NaN values; CSV labels that all parse as numbers compare as numbers (1 == 1.0),
    as they do once Spark infers the column's type."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if fmt == "csv" and pa.types.is_string(col.type):
        col = pc.utf8_trim_whitespace(col)
        if _unparseable(col) is None:
            col = pc.cast(col, pa.float64())
        elif set(pc.unique(pc.utf8_lower(col)).drop_null().to_pylist()) <= {"true", "false"}:
            col = pc.utf8_lower(col)  # Spark reads True/true/TRUE as one boolean
    values = pc.unique(col.drop_null())
    if pa.types.is_floating(values.type):
        values = values.filter(pc.invert(pc.is_nan(values)))
    return set(values.to_pylist())


def _check_split_column(spec: StudySpec, col, fmt: str) -> None:
    """The user's split: every row flagged true/1 (validation) or false/0 (train), with both sides non-empty."""
    import pyarrow as pa
    import pyarrow.compute as pc

    name = spec.data.validation_column
    fix = f"fill {name!r} with true/false (or 1/0) on every row, true/1 marking a validation row"
    empty = col.null_count
    if pa.types.is_floating(col.type):
        empty += pc.sum(pc.is_nan(col).cast(pa.int64())).as_py() or 0
    if empty:
        raise DataError("data.validation_column", f"split column {name!r} is empty on {empty} of {len(col)} rows",
                        fix)
    flags = _split_flags(col, fmt, name, fix)
    n_val = pc.sum(flags.cast(pa.int64())).as_py() or 0
    for side, n in (("validation (true/1)", n_val), ("train (false/0)", len(col) - n_val)):
        if n == 0:
            raise DataError("data.validation_column", f"split column {name!r} marks no {side} rows "
                            f"({len(col)} rows)", "flag rows of both sides: true/1 = validation, false/0 = train")


def _split_flags(col, fmt: str, name: str, fix: str):
    """The split column as booleans, true = validation row. CSV text is read as Spark infers it: all
    true/false (any case) is boolean, all numbers is numeric, a mix of both is plain text (rejected)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_boolean(col.type):
        return col
    if fmt == "csv" and pa.types.is_string(col.type):
        text = pc.utf8_lower(pc.utf8_trim_whitespace(col))
        if _unparseable(text) is not None:
            values = set(pc.unique(text).to_pylist())
            if values <= {"true", "false"}:
                return pc.equal(text, "true")
            raise DataError("data.validation_column", f"split column {name!r} holds {sorted(values)[:5]}, not "
                            "only true/false or only 1/0", fix)
        col = pc.cast(text, pa.float64())
    if not _is_number_type(col.type):
        raise DataError("data.validation_column", f"split column {name!r} has type {col.type}, not boolean or "
                        "0/1", fix)
    bad = sorted(v for v in _distinct(col, "parquet") if v not in (0, 1))
    if bad:
        raise DataError("data.validation_column", f"split column {name!r} holds {bad[:5]}, not only 0/1", fix)
    return pc.equal(col, 1)


def _is_number_type(t) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _is_numeric_list(t) -> bool:
    import pyarrow as pa

    while pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        t = t.value_type
        if _is_number_type(t):
            return True
    return False


def _unparseable(col) -> str | None:
    """First value of a string column that is not a number, or None when all parse."""
    import pyarrow as pa
    import pyarrow.compute as pc

    stripped = pc.utf8_trim_whitespace(col)
    try:
        pc.cast(stripped, pa.float64())
        return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    for chunk in stripped.chunks:
        for v in chunk.to_pylist():
            if v is None:
                continue
            try:
                float(v)
            except ValueError:
                return v
    return "?"
