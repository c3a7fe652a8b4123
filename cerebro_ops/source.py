"""Pre-flight of the data source against the spec, with pyarrow only (no Spark): cheap, run before any work.

Everything the schema can tell is checked here, so that `cerebro-ops validate` rejects it; Spark's prepare
step re-checks only what needs a full pass over the rows.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError
from .spec import StudySpec

# Tokens that mean "missing" in CSV files (pandas/R conventions); Spark's CSV reader only knows "".
NA_TOKENS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A")


# ============================================================================ source resolution

def source_uri(source: str) -> str:
    """Relative paths resolve against the current working directory (the repo root when run from it)."""
    if "://" in source:
        return source
    return Path(source).expanduser().resolve().as_uri()


def _fs_and_path(source: str):
    import fsspec

    return fsspec.core.url_to_fs(source_uri(source))


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
    _check_columns_present(spec, columns)
    table = _read_needed(fs, path, fmt, [d.label, *d.feature_columns], d.source)
    _check_types(spec, table, fmt)
    for name in [d.label, *d.feature_columns]:
        col = table.column(name)
        if len(col) > 0 and col.null_count == len(col):
            raise DataError(_field(spec, name), f"column {name!r} is entirely null ({len(col)} rows)",
                            "fill the column or remove it from the spec")
    if table.num_rows == 0:
        raise DataError("data.source", f"{d.source!r} has no rows", "point data.source at a non-empty file")


def _field(spec: StudySpec, column: str) -> str:
    """The spec field that declares `column`, e.g. data.numeric.dep_delay."""
    d = spec.data
    if column == d.label:
        return "data.label"
    if column in d.numeric:
        return f"data.numeric.{column}"
    if column in d.categorical:
        return f"data.categorical.{column}"
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


def _check_columns_present(spec: StudySpec, columns: list[str]) -> None:
    d = spec.data
    if d.label not in columns:
        raise DataError("data.label", f"label column {d.label!r} is not in the source; available columns: "
                        f"{columns}", "set data.label to one of the available columns")
    missing = [c for c in d.feature_columns if c not in columns]
    if missing:
        raise DataError(_field(spec, missing[0]), f"column(s) {missing} are not in the source; available "
                        f"columns: {columns}", "fix the column names under data.numeric/categorical/arrays")


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
    import pyarrow as pa

    d = spec.data
    for name in d.numeric:
        col = table.column(name)
        if _is_number_type(col.type) or pa.types.is_boolean(col.type):
            continue
        if fmt == "csv" and pa.types.is_string(col.type):
            bad = _unparseable(col)
            if bad is None:
                continue
            problem = f"column {name!r} holds non-numeric values such as {bad!r}"
        else:
            problem = f"column {name!r} has type {col.type}, not a number"
        raise DataError(f"data.numeric.{name}", problem,
                        f"move {name!r} to data.categorical, or clean the column so it holds numbers")
    for a in d.arrays:
        col = table.column(a.name)
        if fmt == "csv":
            raise DataError(f"data.arrays.{a.name}", "CSV files cannot hold array columns",
                            "store the data as Parquet with a list<double> column")
        if not _is_numeric_list(col.type):
            raise DataError(f"data.arrays.{a.name}", f"column {a.name!r} has type {col.type}, not a list of numbers",
                            "store the array as a Parquet list<double> column")


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
