"""MLflow adapter: one parent run per study run, one nested child run per config, a registry champion.

Every call goes through an ``MlflowClient`` bound to an explicit tracking URI, so several trackers
(different stores, different experiments) can live in one process. The only exceptions are the
model helpers (``log_raw_rows_model``, ``load_raw_rows_model``, ``load_champion_data``):
MLflow's flavor code resolves the tracking and registry URIs from process-global state, so those calls
temporarily pin both globals to this tracker's URI under a lock (:meth:`Tracker.mlflow_context`) and
restore them afterwards.

The registered model is the raw-rows pyfunc of serving.py (``log_raw_rows_model``): it takes the user's
rows, not the encoded tensor.

Failure policy: tracking must never crash training. ``start_*``, ``log_*``, ``end_*`` and
``record_decision`` are wrapped by :func:`_never_raise`, which logs a warning on
``cerebro_ops.mlflow.tracking`` and returns ``None``. A ``None`` run id (the run could
not be started) makes those calls no-ops, so callers need no ``if`` around them. ``register_champion``,
``champion`` and the model helpers raise: the register step has to know.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import io
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

from cerebro_ops.core.redact import redact

log = logging.getLogger("cerebro_ops.mlflow.tracking")

PARENT_TAG = "mlflow.parentRunId"
STUDY_TAG = "cerebro.study"
RUN_ID_TAG = "cerebro.run_id"
MODEL_ID_TAG = "cerebro.model_id"
CHAMPION_ALIAS = "champion"
BEST_EPOCH_TAG = "best_epoch"
CHECKPOINT_DIR = "checkpoints"
HOP_TABLE = "hops.json"
END_STATUSES = ("FINISHED", "FAILED", "KILLED")
TRAIN_ROWS = "cerebro/train_rows.npy"  # content hashes of a registered model's training rows (row_hashes.py)
TRAIN_ROWS_SHA_TAG = "cerebro.train_rows_sha256"  # tags of a registered version: their sha256 and columns
TRAIN_ROWS_COLUMNS_TAG = "cerebro.train_rows_columns"
_PAGE = 1000
_MAX_PARAM_LEN = 6000

# Serialises the temporary pinning of MLflow's process-global tracking/registry URIs.
_GLOBAL_URI_LOCK = threading.RLock()


def _never_raise(default: Callable[[], Any] | None = None):
    """Tracking calls log a warning and return ``default()`` (or None) instead of raising."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            if args and args[0] is None:  # no run id: tracking was already down when the run was started
                log.debug("MLflow tracking call %s skipped: no run id", fn.__name__)
                return default() if default is not None else None
            try:
                return fn(self, *args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - tracking must never take training down
                log.warning("MLflow tracking call %s failed (%s: %s) [tracking_uri=%s, experiment=%s]; "
                            "training continues without it", fn.__name__, type(exc).__name__,
                            redact(str(exc).splitlines()[0] if str(exc) else ""), redact(self.tracking_uri),
                            self.experiment)
                return default() if default is not None else None

        return wrapper

    return deco


def default_artifact_location(tracking_uri: str) -> str | None:
    """For ``sqlite:///path/mlflow.db`` the folder ``artifacts/`` beside the db file; else None (MLflow default)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return (Path(path).resolve().parent / "artifacts").as_uri()


def _param_str(v: Any) -> str:
    if isinstance(v, str):
        s = v
    elif isinstance(v, (list, tuple, dict)):
        try:
            s = json.dumps(v, sort_keys=True, default=str)
        except (TypeError, ValueError):
            s = str(v)
    else:
        s = str(v)
    return s if len(s) <= _MAX_PARAM_LEN else s[: _MAX_PARAM_LEN - 3] + "..."


def _as_finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _search_all(client, experiment_ids: list[str], tags: Mapping[str, str]) -> list:
    """All active runs whose tags equal ``tags``. Values containing a quote are matched in Python."""
    from mlflow.entities import ViewType

    clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items() if "'" not in v and "`" not in k]
    filter_string = " AND ".join(clauses)
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=filter_string, run_view_type=ViewType.ACTIVE_ONLY,
                                  max_results=_PAGE, order_by=["attributes.start_time ASC"], page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    return [r for r in runs if all(r.data.tags.get(k) == v for k, v in tags.items())]


class Tracker:
    """MLflow adapter for one experiment. Construction does no I/O; the experiment is created on first use."""

    def __init__(self, tracking_uri: str, experiment: str):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._client = None
        self._experiment_id: str | None = None
        self._lock = threading.RLock()
        self._children: dict[tuple[str, str], str] = {}
        self._parent_tags: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------------------------ plumbing
    @property
    def client(self):
        with self._lock:  # a warm_up thread may be creating it
            if self._client is None:
                from mlflow import MlflowClient

                self._client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self._registry_uri)
            return self._client

    def warm_up(self) -> threading.Thread:
        """Import MLflow and open its store in a background thread (seconds in a new process: MLflow, SQLAlchemy
        and, for a database URI, its schema check), so that work overlaps with what the caller does meanwhile
        (an epoch's training). Later calls wait for it through the client's lock; a failure here is only
        logged (the first real call fails and reports as usual)."""
        def open_client() -> None:
            try:
                from mlflow.entities import Metric  # noqa: F401 - imported by every _log

                self.client  # noqa: B018 - creates the client and its store
            except Exception as exc:  # noqa: BLE001 - tracking never stops training
                log.warning("MLflow warm-up failed: %s", exc)

        thread = threading.Thread(target=open_client, name="mlflow-warm-up", daemon=True)
        thread.start()
        return thread

    @property
    def _registry_uri(self) -> str | None:
        # The registry lives beside the runs; on Databricks let MLflow derive its default (Unity Catalog).
        return None if self.tracking_uri.startswith("databricks") else self.tracking_uri

    @property
    def experiment_id(self) -> str:
        """Get or create the experiment (lazily, race-safe across processes)."""
        with self._lock:
            if self._experiment_id is None:
                self._experiment_id = self._get_or_create_experiment()
            return self._experiment_id

    def _get_or_create_experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            try:
                return self.client.create_experiment(self.experiment,
                                                     artifact_location=default_artifact_location(self.tracking_uri))
            except MlflowException as exc:  # created concurrently by another worker / task
                exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise exc
        if exp.lifecycle_stage == "deleted":
            log.warning("MLflow experiment %r was deleted; restoring it", self.experiment)
            self.client.restore_experiment(exp.experiment_id)
        return exp.experiment_id

    @contextlib.contextmanager
    def mlflow_context(self) -> Iterator[None]:
        """Temporarily point MLflow's process-global tracking and registry URIs at this tracker.

        Needed only for flavor APIs (log_model / load_model / pyfunc.load_model of ``models:/`` URIs) that
        read globals. Restores the previous globals and environment variables afterwards.
        """
        import mlflow
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        env_keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
        with _GLOBAL_URI_LOCK:
            old_tracking, old_registry = tracking_utils._tracking_uri, registry_utils._registry_uri
            old_env = {k: os.environ.get(k) for k in env_keys}
            try:
                mlflow.set_tracking_uri(self.tracking_uri)
                if self._registry_uri is not None:
                    mlflow.set_registry_uri(self._registry_uri)
                yield
            finally:
                if tracking_utils._tracking_uri != old_tracking:
                    mlflow.set_tracking_uri(old_tracking)
                registry_utils._registry_uri = old_registry
                for k, v in old_env.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v

    def _log(self, run_id: str, params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
             metrics: Iterable[tuple[str, float, int]] = ()) -> None:
        from mlflow.entities import Metric, Param, RunTag

        ts = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), ts, int(step)) for k, v, step in metrics],
            params=[Param(str(k), _param_str(v)) for k, v in (params or {}).items()],
            tags=[RunTag(str(k), _param_str(v)) for k, v in (tags or {}).items()],
        )

    # ------------------------------------------------------------------------------------ study runs
    @_never_raise()
    def start_study(self, spec, run_id: str, tags: dict) -> str | None:
        """Parent run for (spec.name, run_id). Idempotent: an existing top-level run is reused and set RUNNING."""
        run_tags = {**{str(k): str(v) for k, v in (tags or {}).items()}, STUDY_TAG: spec.name, RUN_ID_TAG: run_id}
        params = {
            "seed": spec.seed,
            "epochs": spec.train.epochs,
            "workers": spec.train.workers,
            "search_method": spec.search.method,
            "metric": spec.train.metric,
            "direction": spec.train.direction,
            "num_configs": spec.search.num_configs,
        }
        existing = [r for r in _search_all(self.client, [self.experiment_id], {STUDY_TAG: spec.name, RUN_ID_TAG: run_id})
                    if PARENT_TAG not in r.data.tags]
        if existing:
            run = existing[0]
            parent_id = run.info.run_id
            if len(existing) > 1:
                log.warning("%d parent runs for study %s run %s; reusing the oldest (%s)",
                            len(existing), spec.name, run_id, parent_id)
            # Params are immutable in MLflow: log only the missing ones, warn about differing ones.
            old = run.data.params
            changed = {k: (old[k], _param_str(v)) for k, v in params.items() if k in old and old[k] != _param_str(v)}
            if changed:
                log.warning("resumed study run %s has different params than before: %s", parent_id, changed)
            self._log(parent_id, params={k: v for k, v in params.items() if k not in old}, tags=run_tags)
            self.client.update_run(parent_id, status="RUNNING")
        else:
            run = self.client.create_run(self.experiment_id, run_name=f"{spec.name}-{run_id}", tags=run_tags)
            parent_id = run.info.run_id
            self._log(parent_id, params=params)
        self._parent_tags[parent_id] = run_tags
        return parent_id

    @_never_raise()
    def log_prepare_summary(self, parent_id: str, summary: Mapping[str, Any]) -> None:
        """What prepare did to the rows: metrics rows_read/rows_used/train_rows/val_rows/rows_dropped (and one
        rows_dropped_<reason> each), param missing_policy, artifacts prepare_summary.json and .txt."""
        from cerebro_ops.core.prepare_summary import summary_lines

        if not summary:
            return
        dropped = summary.get("dropped", {})
        metrics = [(k, summary[k], 0) for k in ("rows_read", "rows_used", "train_rows", "val_rows")]
        metrics.append(("rows_dropped", sum(dropped.values()), 0))
        metrics += [(f"rows_dropped_{reason.replace(' ', '_')}", n, 0) for reason, n in dropped.items()]
        self._log(parent_id, params={"missing_policy": summary.get("missing_policy")}, metrics=metrics)
        self.client.log_text(parent_id, json.dumps(summary, indent=1, sort_keys=True, ensure_ascii=False),
                             "prepare_summary.json")
        self.client.log_text(parent_id, "\n".join(summary_lines(summary)) + "\n", "prepare_summary.txt")

    @_never_raise()
    def start_config(self, parent_id: str, model_id: str, params: dict) -> str | None:
        """Nested child run for one config. Idempotent on (parent_id, model_id)."""
        key = (parent_id, model_id)
        with self._lock:
            if key in self._children:
                return self._children[key]
        found = _search_all(self.client, [self.experiment_id], {PARENT_TAG: parent_id, MODEL_ID_TAG: model_id})
        if found:
            child_id = found[0].info.run_id
            self.client.update_run(child_id, status="RUNNING")
        else:
            parent_tags = self._parent_tags.get(parent_id)
            if parent_tags is None:
                parent_tags = self.client.get_run(parent_id).data.tags
            inherited = {k: parent_tags[k] for k in (STUDY_TAG, RUN_ID_TAG) if k in parent_tags}
            run = self.client.create_run(self.experiment_id, run_name=model_id,
                                         tags={**inherited, PARENT_TAG: parent_id, MODEL_ID_TAG: model_id})
            child_id = run.info.run_id
            self._log(child_id, params=params)
        with self._lock:
            self._children[key] = child_id
        return child_id

    @_never_raise()
    def log_epoch(self, child_id: str, epoch: int, metrics: dict[str, float]) -> None:
        """Metrics at step=epoch. Non-finite values are skipped and noted in tag ``cerebro.nonfinite.e<epoch>``."""
        tags, good = _epoch_batch(epoch, metrics)
        if good or tags:
            self._log(child_id, tags=tags, metrics=good)

    @_never_raise()
    def log_best(self, child_id: str, metric: str, value: float, best_epoch: int, epoch: int) -> None:
        """The best epoch so far of one config: metric ``best_<metric>`` and ``best_epoch`` (also a tag), at
        step=epoch. The champion is chosen on its best epoch, not its last one, so sorting the runs table
        by ``best_<metric>`` puts the config the register step picks first."""
        tags, metrics = _best_batch(metric, value, best_epoch, epoch)
        self._log(child_id, tags=tags, metrics=metrics)

    @_never_raise()
    def log_checkpoint(self, child_id: str, epoch: int, data: bytes, sha256: str) -> str | None:
        """The config's checkpoint at the end of ``epoch`` (weights and optimizer state, the store's bytes) as
        artifact ``checkpoints/epoch_<epoch>.ckpt`` of its child run, its sha256 as tag
        ``cerebro.ckpt.e<epoch>.sha256``. Returns the artifact path (re-logging an epoch overwrites it)."""
        name = self._upload_checkpoint(child_id, epoch, data)
        self._log(child_id, tags={_ckpt_sha_tag(epoch): sha256})
        return name

    # shape: one config's whole epoch: its run, the epoch, its metrics, its best so far, its checkpoint.
    @_never_raise()
    def log_epoch_result(self, child_id: str, epoch: int, metrics: dict[str, float],
                         best: tuple[str, float, int] | None = None, ckpt: tuple[bytes, str] | None = None) -> None:
        """What log_epoch, log_best (`best` = (metric, value, best epoch)) and log_checkpoint (`ckpt` = (bytes,
        sha256)) log, in one MLflow batch after the checkpoint's upload: a database store commits per batch,
        and three batches per config made the epoch's tail. A failed upload leaves out only its sha256 tag."""
        tags, batch = _epoch_batch(epoch, metrics)
        if best is not None:
            best_tags, best_metrics = _best_batch(*best, epoch)
            tags.update(best_tags)
            batch += best_metrics
        if ckpt is not None:
            try:
                self._upload_checkpoint(child_id, epoch, ckpt[0])
                tags[_ckpt_sha_tag(epoch)] = ckpt[1]
            except Exception as exc:  # noqa: BLE001 - the metrics are still logged
                log.warning("checkpoint of epoch %d not logged to MLflow run %s: %s: %s", epoch, child_id,
                            type(exc).__name__, exc)
        if batch or tags:
            self._log(child_id, tags=tags, metrics=batch)

    def _upload_checkpoint(self, child_id: str, epoch: int, data: bytes) -> str:
        import tempfile

        name = checkpoint_artifact(epoch)
        with tempfile.TemporaryDirectory(prefix="cerebro-ckpt-") as tmp:
            local = Path(tmp) / name.rsplit("/", 1)[1]
            local.write_bytes(data)
            self.client.log_artifact(child_id, str(local), CHECKPOINT_DIR)
        return name

    @_never_raise()
    def log_hop_table(self, parent_id: str, rows: list[dict]) -> None:
        """The run's hops as the MLflow table ``hops.json`` of the parent run (one row per unit). Logged
        once: MLflow appends to an existing table, so a re-run of the step leaves the first one as it is."""
        if not rows:
            return
        if any(f.path == HOP_TABLE for f in self.client.list_artifacts(parent_id)):
            log.info("%s is already logged on run %s; not appending the hops again", HOP_TABLE, parent_id)
            return
        columns = list(dict.fromkeys(k for r in rows for k in r))
        self.client.log_table(parent_id, data={k: [r.get(k) for r in rows] for k in columns},
                              artifact_file=HOP_TABLE)

    @_never_raise()
    def end_config(self, child_id: str, status: str, tags: dict | None = None) -> None:
        if status not in END_STATUSES:
            raise ValueError(f"status {status!r} is not one of {END_STATUSES}")
        if tags:
            self._log(child_id, tags=tags)
        self.client.set_terminated(child_id, status=status)

    @_never_raise()
    def log_study(self, parent_id: str, spec_text: str, leaderboard: list[dict], hop_records: list[dict],
                  metric: str) -> None:
        """Artifacts spec.yaml, leaderboard.json/.csv, leaderboard table, hoplog.jsonl; metric best_<metric>.

        ``leaderboard``: the rows of leaderboard.leaderboard_rows, whose winner gives best_<metric>."""
        from cerebro_ops.core.leaderboard import best_row

        c = self.client
        c.log_text(parent_id, redact(spec_text), "spec.yaml")  # a tracking_uri's password stays out of artifacts
        c.log_text(parent_id, json.dumps(leaderboard, indent=2, sort_keys=True, default=str), "leaderboard.json")
        c.log_text(parent_id, "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in hop_records),
                   "hoplog.jsonl")
        flat = [_flatten(r) for r in leaderboard]
        if flat:
            columns = list(dict.fromkeys(k for r in flat for k in r))
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=columns)
            writer.writeheader()
            writer.writerows(flat)
            c.log_text(parent_id, buf.getvalue(), "leaderboard.csv")
            try:
                c.log_table(parent_id, data={k: [r.get(k) for r in flat] for k in columns},
                            artifact_file="leaderboard_table.json")
            except Exception as exc:  # noqa: BLE001 - the CSV above already carries the table
                log.warning("log_table failed (%s: %s); leaderboard.csv is logged instead", type(exc).__name__, exc)

        best = best_row(leaderboard, metric)
        if best is not None and _as_finite(best[metric]) is not None:
            self._log(parent_id, metrics=[(f"best_{metric}", best[metric], 0)])

    @_never_raise()
    def end_study(self, parent_id: str, status: str) -> None:
        if status not in END_STATUSES:
            raise ValueError(f"status {status!r} is not one of {END_STATUSES}")
        self.client.set_terminated(parent_id, status=status)

    @_never_raise()
    def record_decision(self, parent_id: str, decision: Mapping[str, Any]) -> None:
        """The champion/challenger decision as tags of the study's parent run, promoted or not."""
        tags = {"cerebro.champion.promoted": str(bool(decision.get("promoted"))).lower(),
                "cerebro.champion.decision": decision.get("reason", ""),
                "cerebro.champion.version": decision.get("version") or "",
                "cerebro.champion.metric": decision.get("metric") or "",
                "cerebro.champion.challenger_value": repr(decision.get("challenger")),
                "cerebro.champion.champion_value": repr(decision.get("champion"))}
        self._log(parent_id, tags=tags)

    # ------------------------------------------------------------------------------------ models (may raise)
    def _create_logged_model(self, child_id: str):
        """The LoggedModel, created explicitly in the run's experiment: left to itself, MLflow 3 would put it
        in the process-global active experiment (Default, id 0) because no fluent run is active."""
        run = self.client.get_run(child_id)
        return self.client.create_logged_model(
            experiment_id=run.info.experiment_id, name="model", source_run_id=child_id,
            params={k: v for k, v in run.data.params.items()},
            tags={k: run.data.tags[k] for k in (STUDY_TAG, RUN_ID_TAG, MODEL_ID_TAG) if k in run.data.tags},
        )

    def log_raw_rows_model(self, child_id: str, keras_model, meta: Mapping[str, Any], raw_example) -> str:
        """Log the raw-rows pyfunc (serving.py) of ``keras_model`` under the child run; return ``models:/<id>``.

        ``meta``: the run's meta.json (the encoding); ``raw_example``: a few raw rows (pandas, the label may be
        there): the input example, and what the signature's column names and types come from.
        """
        from cerebro_ops.keras import serving
        from cerebro_ops.core.encoding import Encoding

        encoding = Encoding.from_meta(meta)
        logged = self._create_logged_model(child_id)
        with self.mlflow_context():
            info = serving.log_model(keras_model, encoding, raw_example, name="model", run_id=child_id,
                                     model_id=logged.model_id)
        self.client.set_tag(child_id, "cerebro.model_uri", info.model_uri)
        return info.model_uri

    def load_raw_rows_model(self, model_uri: str):
        """The serving.RawRowsModel behind ``model_uri`` (``.keras_model``, ``.encoding``); raises for a model
        that is not one (e.g. a champion registered with the tensorflow flavor by an older version)."""
        from cerebro_ops.keras import serving

        with self.mlflow_context():
            return serving.load(model_uri)

    def load_champion_data(self, current: Mapping[str, Any]):
        """``current`` (from :meth:`champion`) as champion_check.ChampionData: only its Keras file and encoding
        JSON are downloaded, checked against the sha256 tags of its registration, and loaded as data. Its
        pyfunc (Python code) is never loaded."""
        import tempfile

        from cerebro_ops.keras.champion_check import load_verified

        with tempfile.TemporaryDirectory(prefix="cerebro-champion-") as tmp:
            return load_verified(current["version"], current["tags"], self._model_file(current["model_uri"]), tmp)

    @_never_raise()
    def log_train_rows(self, child_id: str, hashes) -> str | None:
        """The content hashes of the rows a model trained on (row_hashes.py) as artifact TRAIN_ROWS of its child
        run; returns their sha256, which the registered version keeps as a tag (TRAIN_ROWS_SHA_TAG)."""
        import tempfile

        import numpy as np

        from cerebro_ops.keras.champion_check import file_sha256

        with tempfile.TemporaryDirectory(prefix="cerebro-rows-") as tmp:
            path = os.path.join(tmp, os.path.basename(TRAIN_ROWS))
            np.save(path, np.asarray(hashes, dtype=np.uint64), allow_pickle=False)
            self.client.log_artifact(child_id, path, os.path.dirname(TRAIN_ROWS))
            return file_sha256(path)

    @_never_raise()
    def champion_train_rows(self, current: Mapping[str, Any]):
        """The training-row hashes the champion's registration recorded (numpy uint64), or None when it
        recorded none or the file does not match its sha256 tag."""
        import tempfile

        import numpy as np

        from cerebro_ops.keras.champion_check import file_sha256

        tags = current.get("tags") or {}
        sha, run = tags.get(TRAIN_ROWS_SHA_TAG), tags.get("cerebro.mlflow_run_id")
        if not sha or not run:
            return None
        with tempfile.TemporaryDirectory(prefix="cerebro-rows-") as tmp:
            path = self.client.download_artifacts(run, TRAIN_ROWS, tmp)
            if file_sha256(path) != sha:
                log.warning("training rows of champion v%s do not match their sha256 tag: not used", current["version"])
                return None
            return np.load(path, allow_pickle=False)

    def _model_file(self, model_uri: str):
        """download(path inside the model, local dir) -> local path, for one file of ``model_uri``."""
        from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

        def download(rel: str, dst: str) -> str:
            with self.mlflow_context():
                return ModelsArtifactRepository(model_uri).download_artifacts(rel, dst_path=dst)

        return download

    # shape: seven parameters, what a registry version records (name, source, metric and value, tags) plus the two
    # keyword-only fields of the decision (the version it replaces, why).
    def register_champion(self, model_name: str, model_uri: str, metric_name: str, metric_value: float,
                          tags: dict, *, replaced: str | None = None, reason: str = "") -> str:
        """Register a new version of ``model_name`` from ``model_uri``, tag it and point alias 'champion' at it.

        Tags: ``cerebro.metric`` / ``cerebro.metric_value``, ``cerebro.replaced_version`` (the champion it
        replaces, "" for the first), ``cerebro.decision`` (why; also the version's description) and, for a
        raw-rows model, ``cerebro.registered_by`` and the sha256 of its two files (champion_check.py).
        """
        import mlflow

        version_tags = {**{str(k): _param_str(v) for k, v in (tags or {}).items()},
                        "cerebro.metric": metric_name, "cerebro.metric_value": repr(float(metric_value)),
                        "cerebro.replaced_version": replaced or "", "cerebro.decision": reason,
                        "cerebro.model_uri": model_uri, **self._registration_tags(model_uri)}
        with self.mlflow_context():  # the version is created with its tags: one registry call, not one per tag
            mv = mlflow.register_model(model_uri, model_name, await_registration_for=60, tags=version_tags)
        version = str(mv.version)
        self.client.set_model_version_tag(model_name, version, "cerebro.mlflow_run_id", mv.run_id or "")
        if reason:
            self.client.update_model_version(model_name, version, description=reason)
        self.client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
        return version

    def _registration_tags(self, model_uri: str) -> dict[str, str]:
        """The sha256 of the Keras file and encoding of the model being registered, and the marker that this
        project registered it: what a later champion check verifies before loading anything of it."""
        import tempfile

        from cerebro_ops.keras.champion_check import registration_tags

        with tempfile.TemporaryDirectory(prefix="cerebro-register-") as tmp:
            return registration_tags(self._model_file(model_uri), tmp)

    @_never_raise()
    def describe_model(self, model_name: str, description: str) -> None:
        """Set the registered model's description (the study's) when it has none; one written in the
        registry by hand is kept."""
        if not description:
            return
        if not (self.client.get_registered_model(model_name).description or "").strip():
            self.client.update_registered_model(model_name, description=description)

    def champion(self, model_name: str) -> dict | None:
        """The version behind alias 'champion', or None when the model or the alias does not exist."""
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return {
            "version": str(mv.version),
            "run_id": mv.run_id,
            "source": mv.source,
            "metric": _as_finite(mv.tags.get("cerebro.metric_value")),
            "metric_name": mv.tags.get("cerebro.metric"),
            "model_uri": f"models:/{model_name}/{mv.version}",
            "tags": dict(mv.tags),
        }

_DB_SCHEMES = ("sqlite:", "postgresql", "mysql", "mssql")


def preload_mlflow(tracking_uri: str) -> threading.Thread:
    """Import MLflow's client (and, for a database URI, its SQL store) in a background thread (seconds in a
    new process), e.g. while a task joins Spark; a Tracker's first call then finds them imported. Never raises."""
    def load() -> None:
        from cerebro_ops.import_gc import importing

        try:
            with importing():  # no full collections meanwhile (import_gc.py)
                from mlflow import MlflowClient  # noqa: F401
                if tracking_uri.startswith(_DB_SCHEMES):  # the client opens both SQL stores for a database URI
                    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
                    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
        except Exception as exc:  # noqa: BLE001 - only a head start; the real call reports failures
            log.debug("MLflow preload failed: %s", exc)

    thread = threading.Thread(target=load, name="mlflow-preload", daemon=True)
    thread.start()
    return thread


def index_installed_packages() -> None:
    """Let MLflow map the installed distributions to their modules now: it does so the first time a process
    logs a model (importlib's packages_distributions, reading every distribution's file list: 0.5 s here), to
    compare the model's pinned requirements with what is installed. Called while the driver waits on Spark,
    so the register step does not pay it. A private MLflow helper: skipped when a version has none."""
    try:
        from mlflow.utils import requirements_utils

        init = getattr(requirements_utils, "_init_modules_to_packages_map", None)
        if init is not None:
            init()
    except Exception as exc:  # noqa: BLE001 - only a head start
        log.debug("MLflow requirements index failed: %s", exc)


def _epoch_batch(epoch: int, metrics: Mapping[str, Any]) -> tuple[dict, list]:
    """(tags, metrics) of one epoch's metrics at step=epoch: the non-finite ones only named in a tag."""
    good, bad = [], []
    for k, v in metrics.items():
        f = _as_finite(v)
        if f is None:
            bad.append(f"{k}={v}")
        else:
            good.append((k, f, epoch))
    return ({f"cerebro.nonfinite.e{epoch}": ",".join(bad)} if bad else {}), good


def _best_batch(metric: str, value: float, best_epoch: int, epoch: int) -> tuple[dict, list]:
    return ({BEST_EPOCH_TAG: str(best_epoch)},
            [(f"best_{metric}", value, epoch), ("best_epoch", best_epoch, epoch)])


def _ckpt_sha_tag(epoch: int) -> str:
    return f"cerebro.ckpt.e{int(epoch)}.sha256"


def checkpoint_artifact(epoch: int) -> str:
    """Artifact path, in a config's child run, of its checkpoint at the end of ``epoch``."""
    return f"{CHECKPOINT_DIR}/epoch_{int(epoch)}.ckpt"


def _flatten(row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (list, tuple)):
            out[f"{prefix}{k}"] = json.dumps(v, default=str)
        else:
            out[f"{prefix}{k}"] = v
    return out
