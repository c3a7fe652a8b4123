"""`cerebro.tune` equivalent: GridSearch / RandomSearch / TPESearch and the hp_* search-space helpers.

Search-space bounds are values, not logs: ``hp_loguniform(1e-4, 1e-1)`` draws between 1e-4 and 1e-1.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sys
import uuid
from typing import Any, Callable

from cerebro_ops.core.spec import SPARK_MASTER_RE, default_direction, parse_spec
from cerebro_ops.compat.keras import BUILDER, GEN_FN_KEY, SparkModel, estimator, feature_columns_of

log = logging.getLogger("cerebro_ops.compat")


class _HP:
    def __init__(self, kind: str, *args):
        self.kind, self.args = kind, list(args)

    def to_spec(self) -> dict:
        return {self.kind: self.args[0] if self.kind == "choice" else self.args}

    def __repr__(self) -> str:
        return f"hp_{self.kind}({', '.join(map(repr, self.args))})"


def hp_choice(options: list) -> _HP:
    if not isinstance(options, list):
        raise TypeError("options has to be of type list")
    return _HP("choice", list(options))


def hp_uniform(min, max) -> _HP:  # noqa: A002 (original parameter names)
    return _HP("uniform", min, max)


def hp_quniform(min, max, q) -> _HP:  # noqa: A002
    return _HP("quniform", min, max, q)


def hp_loguniform(min, max) -> _HP:  # noqa: A002
    return _HP("loguniform", min, max)


def hp_qloguniform(min, max, q) -> _HP:  # noqa: A002
    return _HP("qloguniform", min, max, q)


def _is_maximised(metric: str) -> bool:
    return default_direction(metric) == "max"


class ModelSelectionResult:
    """What .fit returns: best_model, metrics {model_id: {'train_loss': [...], 'val_<m>': [...]}}, all models."""

    # The fields of the original Cerebro API's ModelSelection result.
    def __init__(self, best_model: SparkModel, metrics: dict, all_models: list[SparkModel], run_id: str,
                 leaderboard: list[dict]):
        self.best_model = best_model
        self.metrics = metrics
        self.all_models = all_models
        self.run_id = run_id
        self.leaderboard = leaderboard

    def get_best_model(self) -> SparkModel:
        return self.best_model

    def get_all_models(self) -> list[SparkModel]:
        return self.all_models

    def get_metrics(self) -> dict:
        return self.metrics

    def get_history(self) -> dict:
        return self.best_model.get_history()

    def get_all_model_history(self) -> list[dict]:
        return [m.get_history() for m in self.all_models]

    def set_output_columns(self, cols: list[str]) -> SparkModel:
        return self.best_model.set_output_columns(cols)

    def transform(self, df):
        return self.best_model.transform(df)

    def keras(self):
        return self.best_model.keras()


class ModelSearch:
    method = "grid"

    # shape: the original Cerebro API's signature, kept so that its scripts run unchanged.
    def __init__(self, backend, store, estimator_gen_fn: Callable[[dict], Any], search_space: dict,
                 num_epochs: int, evaluation_metric: str = "loss", validation: float | str = 0.25,
                 label_columns=("label",), feature_columns=("features",), num_models: int | None = None,
                 parallelism: int | None = None, verbose: int = 1, seed: int = 0, name: str = "cerebro_api",
                 tracking_uri: str | None = None, experiment: str | None = None, task: str | None = None,
                 register: bool = True, logdir: str | None = None, **kwargs):
        if isinstance(validation, str):
            if not validation:
                raise ValueError("validation is an empty column name")
        elif isinstance(validation, bool) or not isinstance(validation, (int, float)) or not 0 < validation < 1:
            raise ValueError(f"validation must be a fraction in (0, 1) or the name of a column of true/false (or "
                             f"1/0) flags, true = validation row; got {validation!r}")
        bad = [k for k, v in search_space.items() if not isinstance(v, _HP)]
        if bad:
            raise TypeError(f"search_space[{bad[0]!r}] is not an hp_* value (use hp_choice, hp_uniform, ...)")
        self.backend, self.store, self.estimator_gen_fn = backend, store, estimator_gen_fn
        self.search_space = dict(search_space)
        self.num_epochs, self.validation, self.verbose, self.seed = int(num_epochs), validation, verbose, seed
        self.evaluation_metric = evaluation_metric[4:] if evaluation_metric.startswith("val_") else evaluation_metric
        self.label_columns = [label_columns] if isinstance(label_columns, str) else list(label_columns)
        self.feature_columns = [feature_columns] if isinstance(feature_columns, str) else list(feature_columns)
        if len(self.label_columns) != 1:
            raise ValueError(f"exactly one label column is supported, got {self.label_columns}")
        self.num_models, self.parallelism = num_models, parallelism
        self.name, self.tracking_uri, self.experiment, self.task = name, tracking_uri, experiment, task
        self.register = register

    # ------------------------------------------------------------------ public API

    def fit(self, df) -> ModelSelectionResult:
        """Write `df` to the store as Parquet, then run the study on it."""
        data = self._write_input(df)
        return self._run(data)

    def fit_on_prepared_data(self, dataset_idx=None) -> ModelSelectionResult:
        """Run again on the data the last .fit of this study name wrote to the store."""
        from cerebro_ops.store import Store

        files = Store(self.store.uri).sub(self.name, "input")
        if not files.exists("columns.json"):
            raise FileNotFoundError(f"no prepared data for study {self.name!r} in {self.store.uri}: call .fit(df)")
        return self._run(files.read_json("columns.json"))

    # ------------------------------------------------------------------ internals

    def _write_input(self, df) -> dict:
        from pyspark.sql import functions as F

        from cerebro_ops.store import Store

        files = Store(self.store.uri).sub(self.name, "input")
        label = self.label_columns[0]
        split = [self.validation] if isinstance(self.validation, str) else []
        missing = [c for c in [*self.feature_columns, label, *split] if c not in df.columns]
        if missing:
            raise ValueError(f"columns {missing} are not in the DataFrame (it has {df.columns})")
        cols, kinds = feature_columns_of(df, self.feature_columns)
        out = df.select(*cols, F.col(label), *map(F.col, split))
        arrays = {}
        if kinds["arrays"]:
            first = out.select(*kinds["arrays"]).first()
            arrays = {c: [len(first[c])] for c in kinds["arrays"]}
        task = self.task or self._infer_task(out, label)
        uri = files.engine_url("data.parquet")  # Spark writes it
        out.write.mode("overwrite").parquet(uri)
        data = {"source": uri, "label": label, "task": task, "numeric": kinds["numeric"],
                "categorical": kinds["categorical"], "arrays": arrays}
        files.write_json("columns.json", data)
        return data

    @staticmethod
    def _infer_task(df, label: str) -> str:
        from pyspark.sql import types as T

        t = df.schema[label].dataType
        n = df.select(label).distinct().limit(3).count()
        if n <= 2:
            return "binary"
        if isinstance(t, (T.IntegralType, T.StringType, T.BooleanType)):
            return "multiclass"
        return "regression"

    def _pickle_gen_fn(self) -> str:
        import cloudpickle

        from cerebro_ops.store import Store

        fn = self.estimator_gen_fn
        mod = sys.modules.get(getattr(fn, "__module__", "") or "")
        by_value = mod is not None and fn.__module__ not in ("__main__",) and not fn.__module__.startswith(
            ("cerebro_ops", "keras", "tensorflow"))
        if by_value:  # workers may not be able to import the user's module: ship its code
            cloudpickle.register_pickle_by_value(mod)
        try:
            blob = cloudpickle.dumps(fn)
        finally:
            if by_value:
                cloudpickle.unregister_pickle_by_value(mod)
        files = Store(self.store.uri).sub(self.name, "fns")
        rel = f"{hashlib.sha256(blob).hexdigest()}.pkl"  # checked against the bytes before unpickling
        files.write_bytes(rel, blob)
        return files.url(rel)

    def _split(self) -> dict:
        """Cerebro's validation=: a fraction, or a column of true/1 = validation row."""
        if isinstance(self.validation, str):
            return {"validation_column": self.validation}
        return {"validation_fraction": float(self.validation)}

    def _search(self) -> dict:
        n = self.num_models or 4
        return {"method": self.method, "num_configs": n}

    def _spec(self, data: dict, space: dict):
        metric = self.evaluation_metric
        runtime = {"store": self.store.uri}
        master = self.backend.spark_master
        if SPARK_MASTER_RE.fullmatch(master):
            runtime["spark_master"] = master
        if self.tracking_uri:
            runtime["tracking_uri"] = self.tracking_uri
        if self.experiment:
            runtime["experiment"] = self.experiment
        return parse_spec({
            "name": self.name, "seed": self.seed,
            "description": f"cerebro API {type(self).__name__}",
            "data": {**data, **self._split()},
            "model": {"builder": BUILDER},
            "search": {**self._search(), "space": space},
            "train": {"epochs": self.num_epochs, "workers": self.backend.num_workers, "metric": f"val_{metric}",
                      "direction": "max" if _is_maximised(metric) else "min"},
            "runtime": runtime})

    def _run(self, data: dict) -> ModelSelectionResult:
        from cerebro_ops import study
        from cerebro_ops.core.search import searcher_for
        from cerebro_ops.keras.trainer import check_builder

        if self.verbose:
            logging.getLogger("cerebro_ops").setLevel(logging.INFO if self.verbose > 1 else logging.WARNING)
        space = {k: v.to_spec() for k, v in self.search_space.items()}
        space[GEN_FN_KEY] = {"choice": [self._pickle_gen_fn()]}
        spec = self._spec(data, space)
        first = searcher_for(spec).first_batch()[0].params
        if "batch_size" not in self.search_space:  # the estimator's batch size, read once on the driver
            space["batch_size"] = {"choice": [estimator(first).batch_size]}
            spec = self._spec(data, space)
            first = searcher_for(spec).first_batch()[0].params
        check_builder(BUILDER, first, study.provisional_info(spec), spec.train.metric)
        run_id = f"api-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        result = study.run(spec, run_id=run_id, spark=self.backend.spark, register_model=self.register)
        return self._result(spec, run_id, result["leaderboard"])

    def _result(self, spec, run_id: str, rows: list[dict]) -> ModelSelectionResult:
        from cerebro_ops import study
        from cerebro_ops.store import run_store

        state = study.load_run(spec, run_id)
        meta = state.meta
        data = {"numeric": list(spec.data.numeric), "categorical": list(spec.data.categorical),
                "arrays": [a.name for a in spec.data.arrays]}
        metrics, models = {}, {}
        for row in sorted(rows, key=lambda r: r["model_id"]):
            m = row["model_id"]
            hist = state.models[m].history
            keys = list(hist[0].metrics) if hist else []
            metrics[m] = {k: [h.value(k) for h in hist] for k in keys}
            params = state.models[m].params
            models[m] = SparkModel(m, {k: v for k, v in params.items() if k != GEN_FN_KEY}, metrics[m],
                                   _loader(run_store(spec.runtime.store, spec.name, run_id), meta, params, row),
                                   data, meta, self.backend.spark, spec.data.label)
        best = rows[0]["model_id"] if rows and rows[0]["ckpt"] else None
        if best is None:
            raise RuntimeError(f"run {run_id}: no config finished successfully")
        return ModelSelectionResult(models[best], metrics, [models[m] for m in sorted(models)], run_id, rows)


def _loader(files, meta: dict, params: dict, row: dict):
    def load():
        from cerebro_ops.keras.trainer import HopTrainer, data_info

        if not row["ckpt"]:
            raise RuntimeError(f"{row['model_id']} has no checkpoint ({row['status']})")
        blob = files.read_blob(row["ckpt"]["ckpt"], row["ckpt"]["sha256"])
        return HopTrainer(data_info(meta), deterministic=False).keras_model(BUILDER, params, blob)
    return load


class GridSearch(ModelSearch):
    """Every combination of the hp_choice values."""
    method = "grid"

    def _search(self) -> dict:
        return {"method": "grid", "num_configs": 1}


class RandomSearch(ModelSearch):
    """num_models seeded random draws."""
    method = "random"


class TPESearch(ModelSearch):
    """num_models configs asked from Optuna's TPE in batches of `parallelism` (trained together by MOP)."""
    method = "tpe"

    def _search(self) -> dict:
        return {"method": "tpe", "num_configs": self.num_models or 4, "batch_size": self.parallelism or 0}
