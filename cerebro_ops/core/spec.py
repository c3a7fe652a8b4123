"""Study spec: YAML → frozen dataclasses, validated once, in one place.

Nothing downstream re-reads YAML. Every problem raises :class:`SpecError` naming the field and the fix,
before any work starts. Pure: no Airflow, Spark or TensorFlow imports.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from cerebro_ops.core.distributions import DISTRIBUTIONS, Param
from cerebro_ops.core.errors import SpecError
from cerebro_ops.store import schemes as store_schemes  # pure: no fsspec

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
SPARK_MASTER_RE = re.compile(r"local(\[(\d+|\*)(,\d+)?\])?|spark://[\w.\-]+(:\d+)?(,[\w.\-]+(:\d+)?)*|sc://\S+|yarn")
BUILDER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
TASKS = ("binary", "multiclass", "regression")
METHODS = ("grid", "random", "tpe")
PRUNERS = ("none", "median", "asha", "hyperband")
HOP_ORDERS = ("cost_aware", "fixed")  # see hop_order.py
# The trigger-time overrides (Airflow Params, CLI options): key -> the spec field it replaces and its type.
OVERRIDABLE = {"seed": ("seed", int), "epochs": ("train.epochs", int),
               "num_configs": ("search.num_configs", int), "source": ("data.source", str)}


def default_hop_order(deterministic: bool) -> str:
    """train.hop_order when the spec gives none. Deterministic runs keep hop orders a function of seed and
    epoch only, so two independent runs match; otherwise orders may follow the previous epoch's measured hop
    times (faster on mixed-cost grids)."""
    return "fixed" if deterministic else "cost_aware"
SCHEDULE_PRESETS = ("@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "on_data_change")
MAX_EPOCHS = 1000
MAX_WORKERS = 256
MAX_CONFIGS = 10000
MISSING_POLICIES = ("impute", "drop", "error")
# One-hot slots per categorical column: a column with more distinct values keeps its most frequent ones.
MAX_CATEGORIES_LIMIT = 1000
DATETIME_PARTS = ("year", "month", "day", "day_of_week", "hour")
# A metric is maximised when a "_"-separated token of its name is one of these (val_acc, auc_1,
# sparse_categorical_accuracy, top_k_categorical_accuracy, ...); anything else (loss, mse, mae, ...) is
# minimised. A "loss"/"error" token wins: iou_loss is a loss.
MAXIMISED_TOKENS = frozenset({"acc", "accuracy", "auc", "prc", "precision", "recall", "f1", "fbeta", "iou",
                              "top", "r2"})
MINIMISED_TOKENS = frozenset({"loss", "error"})

# Defaults are relative to the repository root (or CEREBRO_HOME when set).
DEFAULT_HOME = ".cerebro"


def project_home() -> Path:
    return Path(os.environ.get("CEREBRO_HOME", DEFAULT_HOME)).resolve()


@dataclass(frozen=True)
class ArrayFeature:
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class DataSpec:
    source: str
    label: str
    task: str = "binary"
    format: str = "auto"
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    arrays: tuple[ArrayFeature, ...] = ()
    validation_fraction: float = 0.2
    max_categories: int = 50
    validation_column: str | None = None  # the user's own split (true/1 = validation row); overrides the fraction
    stratify: bool = True  # classification splits keep each class's share in train and validation
    datetime: tuple[str, ...] = ()  # date/time columns, each trained on as DATETIME_PARTS
    missing: str = "impute"  # a missing feature value: impute (median / own category) | drop the row | error
    max_dropped_share: float = 0.05  # missing: drop fails prepare when more than this share of rows is lost
    # where a trigger's `source` may point (path / URI prefixes); () = the directory of `source` (source_policy.py)
    allowed_sources: tuple[str, ...] = ()

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return self.numeric + self.datetime + self.categorical + tuple(a.name for a in self.arrays)

    @property
    def resolved_format(self) -> str:
        if self.format != "auto":
            return self.format
        return "csv" if self.source.lower().rstrip("/").endswith((".csv", ".csv.gz")) else "parquet"


@dataclass(frozen=True)
class SearchSpec:
    method: str = "grid"
    num_configs: int = 4
    batch_size: int = 0  # configs asked per batch (tpe); 0 = automatic, max(2, num_configs // 3), at most num_configs
    space: tuple[Param, ...] = ()


@dataclass(frozen=True)
class PruningSpec:
    method: str = "none"
    min_epochs: int = 1
    reduction_factor: int = 3


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = 3
    workers: int = 2
    metric: str = "val_loss"
    direction: str = "min"
    deterministic: bool = True
    hop_order: str = default_hop_order(deterministic=True)  # the parser's default follows `deterministic`


@dataclass(frozen=True)
class RuntimeSpec:
    spark_master: str = ""
    store: str = ""
    tracking_uri: str = ""
    experiment: str = ""
    max_hop_retries: int = 2
    connect_timeout_s: float = 120.0  # every epoch worker must connect to the driver within this
    worker_lost_s: float = 60.0       # a worker silent this long (no heartbeat) is lost; its unit runs again
    # The data's share of a worker's memory (MB); None: half of spark.executor.memory, else a quarter of the
    # host's RAM (core/memory_budget.py). A partition over it is streamed from local_dir, not cached.
    worker_memory_mb: int | None = None
    local_dir: str = ""               # where streamed partitions are copied; "" = SPARK_LOCAL_DIRS, else /tmp


@dataclass(frozen=True)
class StudySpec:
    name: str
    data: DataSpec
    model_builder: str
    search: SearchSpec
    train: TrainSpec
    runtime: RuntimeSpec
    seed: int = 0
    schedule: str | None = None
    pruning: PruningSpec = field(default_factory=PruningSpec)
    description: str = ""

    @property
    def dag_id(self) -> str:
        return f"cerebro_{self.name}"

    @property
    def metric_key(self) -> str:
        """The metric name without its 'val_' prefix, as Keras reports it."""
        return self.train.metric[4:] if self.train.metric.startswith("val_") else self.train.metric

    def with_overrides(self, **overrides: Any) -> "StudySpec":
        """Apply trigger-time overrides (:data:`OVERRIDABLE`, already validated by :func:`validate_overrides`);
        None or "" leaves the spec's value."""
        spec = self
        for key, (path, kind) in OVERRIDABLE.items():
            if overrides.get(key) not in (None, ""):
                spec = _replaced(spec, path.split("."), kind(overrides[key]))
        return spec

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _replaced(obj, path: list[str], value: Any):
    """A copy of the frozen dataclass `obj` with the field at `path` (``["train", "epochs"]``) set to `value`."""
    head, *rest = path
    return dataclasses.replace(obj, **{head: _replaced(getattr(obj, head), rest, value) if rest else value})


# --------------------------------------------------------------------------------------------- parsing

_TOP_KEYS = {"name", "description", "seed", "data", "model", "search", "train", "runtime", "schedule", "pruning"}
_DATA_KEYS = {"source", "label", "task", "format", "numeric", "categorical", "arrays", "validation_fraction",
              "max_categories", "validation_column", "stratify", "datetime", "missing", "max_dropped_share",
              "allowed_sources"}
_MODEL_KEYS = {"builder"}
_SEARCH_KEYS = {"method", "num_configs", "batch_size", "space"}
_PRUNING_KEYS = {"method", "min_epochs", "reduction_factor"}
_TRAIN_KEYS = {"epochs", "workers", "metric", "direction", "deterministic", "hop_order"}
_RUNTIME_KEYS = {"spark_master", "store", "tracking_uri", "experiment", "max_hop_retries", "connect_timeout_s",
                 "worker_lost_s", "worker_memory_mb", "local_dir"}


def load_spec(path: str | os.PathLike) -> StudySpec:
    """Read and validate a spec file. Raises SpecError; never executes anything from the file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError("<file>", f"spec file {str(p)!r} does not exist", "pass the path of a YAML study spec")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise SpecError("<file>", f"{p.name} is not valid YAML ({exc.__class__.__name__}: "
                        f"{str(exc).splitlines()[0]})", "fix the YAML syntax") from None
    return parse_spec(raw)


def parse_spec(raw: Any) -> StudySpec:
    if not isinstance(raw, Mapping):
        raise SpecError("<root>", "the spec must be a mapping of keys to values", "start from dags/specs/demo.yaml")
    _no_unknown(raw, _TOP_KEYS, "")
    name = _require(raw, "name", str, "")
    if not NAME_RE.match(name):
        raise SpecError("name", f"{name!r} is not a valid study name",
                        "use 1-63 lowercase letters, digits or '_', starting with a letter")
    seed = _get(raw, "seed", int, "", 0)
    if seed < 0 or seed >= 2**31:
        raise SpecError("seed", f"{seed} is out of range", "use an integer in [0, 2**31)")
    data = _parse_data(_section(raw, "data", required=True))
    model = _section(raw, "model", required=True)
    _no_unknown(model, _MODEL_KEYS, "model.")
    builder = _require(model, "builder", str, "model.")
    if not BUILDER_RE.match(builder):
        raise SpecError("model.builder", f"{builder!r} is not an import path",
                        "write 'package.module:function', e.g. 'cerebro_ops.builders:mlp'")
    search = _parse_search(_section(raw, "search", required=True))
    train = _parse_train(_section(raw, "train", required=False), data)
    runtime = _parse_runtime(_section(raw, "runtime", required=False), name, train.workers)
    pruning = _parse_pruning(_section(raw, "pruning", required=False), train.epochs)
    schedule = raw.get("schedule")
    if schedule is not None:
        if not isinstance(schedule, str) or not (schedule in SCHEDULE_PRESETS or is_cron(schedule)):
            raise SpecError("schedule", f"{schedule!r} is not a schedule",
                            f"use one of {', '.join(SCHEDULE_PRESETS)}, a 5-field cron expression "
                            "(minute hour day-of-month month day-of-week, e.g. '0 3 * * MON'), or omit it")
    description = _get(raw, "description", str, "", "")
    return StudySpec(name=name, data=data, model_builder=builder, search=search, train=train, runtime=runtime,
                     seed=seed, schedule=schedule, pruning=pruning, description=description)


def spec_from_dict(d: Mapping) -> StudySpec:
    """The inverse of :meth:`StudySpec.to_dict` (also after a JSON round trip: lists back to tuples).

    A run's snapshot comes back from the store, which more than the spec's author can write: it goes through
    the same checks as a spec file (:func:`parse_spec`), and a snapshot that fails them is refused."""
    spec = _spec_from_snapshot(d)
    try:
        parse_spec(_raw_of(spec))
    except SpecError as err:
        raise SpecError(f"spec snapshot: {err.field}", err.problem,
                        "the run's state.json was changed after prepare; start a new run") from None
    return spec


def _raw_of(spec: StudySpec) -> dict:
    """``spec`` in the shape of a spec file, for :func:`parse_spec`."""
    def plain(v):
        return [plain(x) for x in v] if isinstance(v, (tuple, list)) else v

    data = {f.name: plain(getattr(spec.data, f.name)) for f in dataclasses.fields(DataSpec)}
    data["arrays"] = {a.name: list(a.shape) for a in spec.data.arrays}
    search = {"method": spec.search.method, "num_configs": spec.search.num_configs,
              "batch_size": spec.search.batch_size,
              "space": {p.name: {p.kind: plain(p.args)} for p in spec.search.space}}
    raw = {"name": spec.name, "description": spec.description, "seed": spec.seed, "data": data,
           "model": {"builder": spec.model_builder}, "search": search,
           "train": dataclasses.asdict(spec.train), "runtime": dataclasses.asdict(spec.runtime),
           "pruning": dataclasses.asdict(spec.pruning)}
    if spec.schedule is not None:
        raw["schedule"] = spec.schedule
    return raw


def _spec_from_snapshot(d: Mapping) -> StudySpec:
    def make(cls, values: Mapping, **converted):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise SpecError(f"spec snapshot: {unknown[0]}", "is not a field of this version's spec",
                            "resume the run with the version of cerebro-ops that prepared it")
        return cls(**{**values, **converted})

    def args(values) -> tuple:
        return tuple(tuple(a) if isinstance(a, list) else a for a in values)

    data, search = d["data"], d["search"]
    return make(StudySpec, d,
                data=make(DataSpec, data, numeric=tuple(data["numeric"]), categorical=tuple(data["categorical"]),
                          datetime=tuple(data.get("datetime", ())),
                          allowed_sources=tuple(data.get("allowed_sources", ())),
                          arrays=tuple(make(ArrayFeature, a, shape=tuple(a["shape"])) for a in data["arrays"])),
                search=make(SearchSpec, search,
                            space=tuple(make(Param, p, args=args(p["args"])) for p in search["space"])),
                train=make(TrainSpec, d["train"]), runtime=make(RuntimeSpec, d["runtime"]),
                pruning=make(PruningSpec, d["pruning"]))


def is_cron(s: str) -> bool:
    """A 5-field cron expression that croniter (what Airflow schedules with) accepts, ranges included."""
    from croniter import croniter

    return len(s.split()) == 5 and croniter.is_valid(s)


def default_direction(metric: str) -> str:
    """max for accuracy-like metrics, min for losses and errors, decided by the tokens of the name."""
    tokens = set(metric.split("_"))
    return "max" if tokens & MAXIMISED_TOKENS and not tokens & MINIMISED_TOKENS else "min"


def _parse_data(d: Mapping) -> DataSpec:
    _no_unknown(d, _DATA_KEYS, "data.")
    source = _require(d, "source", str, "data.")
    if not source.strip():
        raise SpecError("data.source", "is empty", "give a CSV or Parquet path or URI")
    label = _column_name(d, "label")
    task = _get(d, "task", str, "data.", "binary")
    if task not in TASKS:
        raise SpecError("data.task", f"{task!r} is not a task", f"use one of {', '.join(TASKS)}")
    fmt = _get(d, "format", str, "data.", "auto")
    if fmt not in ("auto", "csv", "parquet"):
        raise SpecError("data.format", f"{fmt!r} is not a format", "use csv, parquet or auto")
    numeric, categorical, datetimes, arrays = _parse_features(d, label)
    feats = numeric + datetimes + categorical + tuple(a.name for a in arrays)
    split_col = _column_name(d, "validation_column") if d.get("validation_column") is not None else None
    if split_col is not None and (split_col == label or split_col in feats):
        role = "the label" if split_col == label else "a feature"
        raise SpecError("data.validation_column", f"{split_col!r} is {role}",
                        "name a separate column of true/false (or 1/0) flags, true/1 = validation row")
    return DataSpec(allowed_sources=_allowed_sources(d),
                    source=source, label=label, task=task, format=fmt, numeric=numeric, categorical=categorical,
                    arrays=arrays, validation_column=split_col, stratify=_get(d, "stratify", bool, "data.", True),
                    datetime=datetimes, **_parse_row_options(d))


def _parse_features(d: Mapping, label: str) -> tuple[tuple, tuple, tuple, tuple]:
    """(numeric, categorical, datetime, arrays): each feature declared once, none of them the label."""
    numeric = _str_list(d, "numeric", "data.")
    categorical = _str_list(d, "categorical", "data.")
    datetimes = _str_list(d, "datetime", "data.")
    arrays_raw = d.get("arrays", {}) or {}
    if not isinstance(arrays_raw, Mapping):
        raise SpecError("data.arrays", "must be a mapping of column name to shape",
                        "write e.g. 'arrays: {pixels: [8, 8, 1]}'")
    arrays = []
    for col, shape in arrays_raw.items():
        if (not isinstance(shape, list) or not shape
                or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in shape)):
            raise SpecError(f"data.arrays.{col}", f"shape {shape!r} is not a list of positive integers",
                            "write the array's fixed shape, e.g. [8, 8, 1]")
        arrays.append(ArrayFeature(str(col), tuple(shape)))
    feats = numeric + datetimes + categorical + tuple(a.name for a in arrays)
    if not feats:
        raise SpecError("data.numeric", "no feature columns are declared",
                        "list at least one column under data.numeric, data.categorical or data.arrays")
    dupes = sorted({f for f in feats if feats.count(f) > 1})
    if dupes:
        raise SpecError("data.numeric", f"column(s) {dupes} are declared twice", "declare each feature once")
    if label in feats:
        raise SpecError("data.label", f"label {label!r} is also listed as a feature", "remove it from the features")
    return numeric, categorical, datetimes, tuple(arrays)


def _parse_row_options(d: Mapping) -> dict:
    """How rows are split and cleaned: validation_fraction, max_categories, missing, max_dropped_share."""
    vf = _get(d, "validation_fraction", (int, float), "data.", 0.2)
    if not (0.0 < float(vf) < 1.0):
        raise SpecError("data.validation_fraction", f"{vf} is not between 0 and 1",
                        "use a fraction such as 0.2")
    mc = _get(d, "max_categories", int, "data.", 50)
    if mc < 1:
        raise SpecError("data.max_categories", f"{mc} is below 1", "use a positive integer such as 50")
    if mc > MAX_CATEGORIES_LIMIT:
        raise SpecError("data.max_categories", f"{mc} one-hot slots per column is more than {MAX_CATEGORIES_LIMIT}",
                        f"use at most {MAX_CATEGORIES_LIMIT}: rarer values share the column's <other> slot")
    missing = _get(d, "missing", str, "data.", "impute")
    if missing not in MISSING_POLICIES:
        raise SpecError("data.missing", f"{missing!r} is not a policy for missing values",
                        f"use one of {', '.join(MISSING_POLICIES)} (impute is the default)")
    dropped = _get(d, "max_dropped_share", (int, float), "data.", 0.05)
    if not (0.0 <= float(dropped) <= 1.0):
        raise SpecError("data.max_dropped_share", f"{dropped} is not between 0 and 1",
                        "use a share of rows such as 0.05")
    return {"validation_fraction": float(vf), "max_categories": mc, "missing": missing,
            "max_dropped_share": float(dropped)}


def _parse_search(d: Mapping) -> SearchSpec:
    _no_unknown(d, _SEARCH_KEYS, "search.")
    method = _get(d, "method", str, "search.", "grid")
    if method not in METHODS:
        raise SpecError("search.method", f"{method!r} is not a search method", f"use one of {', '.join(METHODS)}")
    num = _get(d, "num_configs", int, "search.", 4)
    if not (1 <= num <= MAX_CONFIGS):
        raise SpecError("search.num_configs", f"{num} is out of range", f"use an integer in [1, {MAX_CONFIGS}]")
    batch = _get(d, "batch_size", int, "search.", 0)
    if batch < 0:
        raise SpecError("search.batch_size", f"{batch} is negative",
                        "use 0 (automatic: max(2, num_configs // 3)) or a positive size")
    space_raw = d.get("space")
    if not isinstance(space_raw, Mapping) or not space_raw:
        raise SpecError("search.space", "is missing or empty",
                        "declare at least one parameter, e.g. 'learning_rate: {loguniform: [1.0e-4, 1.0e-2]}'")
    space = tuple(parse_param(str(k), v) for k, v in space_raw.items())
    if method == "grid":
        bad = [p.name for p in space if not DISTRIBUTIONS[p.kind].discrete]
        if bad:
            raise SpecError(f"search.space.{bad[0]}", "grid search needs discrete values",
                            "use {choice: [...]} or {int: [low, high]}, or set search.method: random")
    return SearchSpec(method=method, num_configs=num, batch_size=batch, space=space)


def parse_param(name: str, v: Any) -> Param:
    """One search-space entry. A bare list is shorthand for choice."""
    fld = f"search.space.{name}"
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SpecError(fld, "is not a valid parameter name", "use letters, digits and '_'")
    if isinstance(v, list):
        v = {"choice": v}
    if not isinstance(v, Mapping) or len(v) != 1:
        raise SpecError(fld, f"{v!r} is not a distribution",
                        f"write one of {{{'|'.join(DISTRIBUTIONS)}: [...]}}, e.g. {{uniform: [0.1, 0.5]}}")
    kind, args = next(iter(v.items()))
    if kind not in DISTRIBUTIONS:
        raise SpecError(fld, f"{kind!r} is not a distribution", f"use one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, list):
        raise SpecError(fld, f"{kind} needs a list of arguments", f"write {{{kind}: [...]}}")
    dist = DISTRIBUTIONS[kind]
    if dist.arity is None:  # a list of values
        if not args:
            raise SpecError(fld, "choice has no values", "list at least one value")
        for a in args:
            if not isinstance(a, (int, float, str, bool)) and a is not None and not _is_num_list(a):
                raise SpecError(fld, f"choice value {a!r} is not a scalar", "use numbers, strings or booleans")
        return Param(name, kind, tuple(tuple(a) if isinstance(a, list) else a for a in args))
    nums = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    want = dist.arity
    if len(args) != want or len(nums) != want or not all(math.isfinite(a) for a in nums):
        shape = "[low, high, q]" if want == 3 else "[low, high]"
        raise SpecError(fld, f"{kind} needs {want} finite numbers, got {args!r}", f"write {{{kind}: {shape}}}")
    low, high = nums[0], nums[1]
    if not low < high:
        raise SpecError(fld, f"low {low} is not below high {high}", "make low < high")
    if dist.log and low <= 0:
        raise SpecError(fld, f"{kind} needs low > 0, got {low}", "use a positive lower bound (e.g. 1.0e-5)")
    if want == 3 and nums[2] <= 0:
        raise SpecError(fld, f"q must be positive, got {nums[2]}", "use a positive step")
    if dist.integer_bounds and not all(isinstance(a, int) for a in args):
        raise SpecError(fld, f"int bounds must be integers, got {args!r}", "write {int: [low, high]}")
    return Param(name, kind, tuple(args))


def _is_num_list(a: Any) -> bool:
    return isinstance(a, list) and bool(a) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in a)


def _parse_train(d: Mapping, data: DataSpec) -> TrainSpec:
    _no_unknown(d, _TRAIN_KEYS, "train.")
    epochs = _get(d, "epochs", int, "train.", 3)
    if not (1 <= epochs <= MAX_EPOCHS):
        raise SpecError("train.epochs", f"{epochs} is out of range", f"use an integer in [1, {MAX_EPOCHS}]")
    workers = _get(d, "workers", int, "train.", 2)
    if not (1 <= workers <= MAX_WORKERS):
        raise SpecError("train.workers", f"{workers} is out of range", f"use an integer in [1, {MAX_WORKERS}]")
    metric = _get(d, "metric", str, "train.", "val_loss")
    if not re.fullmatch(r"(val_)?[a-z][a-z0-9_]*", metric):
        raise SpecError("train.metric", f"{metric!r} is not a metric name", "use e.g. val_loss or val_accuracy")
    if not metric.startswith("val_"):
        metric = "val_" + metric
    direction = _get(d, "direction", str, "train.", default_direction(metric))
    if direction not in ("min", "max"):
        raise SpecError("train.direction", f"{direction!r} is not a direction", "use min or max")
    deterministic = _get(d, "deterministic", bool, "train.", True)
    hop_order = _get(d, "hop_order", str, "train.", default_hop_order(deterministic))
    if hop_order not in HOP_ORDERS:
        raise SpecError("train.hop_order", f"{hop_order!r} is not a hop order",
                        "use cost_aware (heavy models first, from the previous epoch's hop times) or fixed")
    return TrainSpec(epochs=epochs, workers=workers, metric=metric, direction=direction, deterministic=deterministic,
                     hop_order=hop_order)


def _parse_runtime(d: Mapping, name: str, workers: int) -> RuntimeSpec:
    _no_unknown(d, _RUNTIME_KEYS, "runtime.")
    home = project_home()
    master = _get(d, "spark_master", str, "runtime.", f"local[{workers}]")
    if not SPARK_MASTER_RE.fullmatch(master):
        raise SpecError("runtime.spark_master", f"{master!r} is not a Spark master",
                        "use local[N], spark://host:port, sc://host:port or yarn")
    store = _get(d, "store", str, "runtime.", (home / "store").as_uri())
    if ".." in Path(store.split("://", 1)[-1]).parts:
        raise SpecError("runtime.store", f"{store!r} contains '..'", "give the store as an absolute path or URI")
    if "://" not in store:
        store = Path(store).resolve().as_uri()
    if not store_schemes.is_supported(store):
        raise SpecError("runtime.store", f"{store!r} has an unsupported scheme",
                        f"use one of {', '.join(s + '://' for s in store_schemes.SCHEMES)}")
    tracking = _get(d, "tracking_uri", str, "runtime.", f"sqlite:///{home / 'mlflow.db'}")
    experiment = _get(d, "experiment", str, "runtime.", f"cerebro-{name}")
    retries = _get(d, "max_hop_retries", int, "runtime.", 2)
    if not 0 <= retries <= 10:
        raise SpecError("runtime.max_hop_retries", f"{retries} is out of range", "use an integer in [0, 10]")
    connect = float(_get(d, "connect_timeout_s", (int, float), "runtime.", 120.0))
    if not 1 <= connect <= 86400:
        raise SpecError("runtime.connect_timeout_s", f"{connect:g} is out of range", "use seconds in [1, 86400]")
    lost = float(_get(d, "worker_lost_s", (int, float), "runtime.", 60.0))
    if not 15 <= lost <= 86400:  # workers send a heartbeat every 5 s
        raise SpecError("runtime.worker_lost_s", f"{lost:g} is out of range", "use seconds in [15, 86400]")
    return RuntimeSpec(spark_master=master, store=store, tracking_uri=tracking, experiment=experiment,
                       max_hop_retries=retries, connect_timeout_s=connect, worker_lost_s=lost,
                       **_parse_memory(d))


def _parse_memory(d: Mapping) -> dict:
    budget = _get(d, "worker_memory_mb", int, "runtime.", None)
    if budget is not None and not 16 <= budget <= 1 << 24:
        raise SpecError("runtime.worker_memory_mb", f"{budget} is out of range",
                        "give the data's share of one worker's memory in MB, at least 16 (or leave it out)")
    local_dir = _get(d, "local_dir", str, "runtime.", "")
    if local_dir and "://" in local_dir:
        raise SpecError("runtime.local_dir", f"{local_dir!r} is a URI", "give a directory on each worker host")
    return {"worker_memory_mb": budget, "local_dir": local_dir}


def _parse_pruning(d: Mapping, epochs: int) -> PruningSpec:
    _no_unknown(d, _PRUNING_KEYS, "pruning.")
    method = _get(d, "method", str, "pruning.", "none")
    if method not in PRUNERS:
        raise SpecError("pruning.method", f"{method!r} is not a pruner", f"use one of {', '.join(PRUNERS)}")
    min_epochs = _get(d, "min_epochs", int, "pruning.", 1)
    if not 1 <= min_epochs <= max(1, epochs):
        raise SpecError("pruning.min_epochs", f"{min_epochs} is out of range", f"use an integer in [1, {epochs}]")
    rf = _get(d, "reduction_factor", int, "pruning.", 3)
    if rf < 2:
        raise SpecError("pruning.reduction_factor", f"{rf} is below 2", "use an integer >= 2 (3 is typical)")
    return PruningSpec(method=method, min_epochs=min_epochs, reduction_factor=rf)


# --------------------------------------------------------------------------------------------- helpers

def _section(raw: Mapping, key: str, required: bool) -> Mapping:
    v = raw.get(key)
    if v is None:
        if required:
            raise SpecError(key, "is missing", f"add a '{key}:' section (see dags/specs/demo.yaml)")
        return {}
    if not isinstance(v, Mapping):
        raise SpecError(key, f"must be a mapping, got {type(v).__name__}", f"write '{key}:' followed by keys")
    return v


def _no_unknown(d: Mapping, allowed: set[str], prefix: str) -> None:
    unknown = sorted(str(k) for k in d if k not in allowed)
    if unknown:
        import difflib
        hint = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        fix = f"did you mean '{prefix}{hint[0]}'?" if hint else f"allowed keys: {', '.join(sorted(allowed))}"
        raise SpecError(prefix + unknown[0], "is not a known key", fix)


def _type_name(t) -> str:
    """The type with its article: "an integer", "a string"."""
    if isinstance(t, tuple):
        return "a number"
    return {int: "an integer", str: "a string", bool: "a boolean", float: "a number"}.get(t, f"a {t.__name__}")


def _get(d: Mapping, key: str, typ, prefix: str, default):
    if key not in d or d[key] is None:
        return default
    v = d[key]
    ok = isinstance(v, typ) and not (isinstance(v, bool) and typ is not bool and bool not in
                                      (typ if isinstance(typ, tuple) else (typ,)))
    if not ok:
        raise SpecError(prefix + key, f"must be {_type_name(typ)}, got {type(v).__name__} {v!r}",
                        f"write {_type_name(typ)} value")
    return v


def _require(d: Mapping, key: str, typ, prefix: str):
    if key not in d or d[key] is None:
        raise SpecError(prefix + key, "is missing", f"add '{key}:' to the spec")
    return _get(d, key, typ, prefix, None)


def _column_name(d: Mapping, key: str) -> str:
    """Any non-empty string a CSV/Parquet header can hold (dots, spaces, unicode, leading digits)."""
    v = d.get(key)
    if v is None:
        raise SpecError(f"data.{key}", "is missing", f"add '{key}:' to the spec")
    if not isinstance(v, str) or not v:
        raise SpecError(f"data.{key}", f"must be a column name, got {type(v).__name__} {v!r}",
                        "write the column's name as a string; quote names YAML reads otherwise, e.g. '\"2019\"'")
    return v


def _allowed_sources(d: Mapping) -> tuple[str, ...]:
    v = d.get("allowed_sources") or []
    if not isinstance(v, list) or not all(isinstance(x, str) and x.strip() and x.isprintable() for x in v):
        raise SpecError("data.allowed_sources", "must be a list of path or URI prefixes",
                        "write e.g. 'allowed_sources: [/data/shared, s3://bucket/tables]'")
    return tuple(x.strip() for x in v)


def _str_list(d: Mapping, key: str, prefix: str) -> tuple[str, ...]:
    v = d.get(key) or []
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise SpecError(prefix + key, "must be a list of column names",
                        f"write '{key}: [col_a, col_b]'; quote names YAML reads otherwise, e.g. \"2019\"")
    return tuple(v)
