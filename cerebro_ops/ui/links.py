"""Links from the plugin's pages to the MLflow UI (runs, registered model versions).

The MLflow UI's address is `CEREBRO_MLFLOW_UI_URL` (else the caller's configured value, else
http://127.0.0.1:5000). A run link needs the run's experiment id: it is looked up read-only in the study's
tracking store and cached; without it the link is MLflow's experiment-less run route, which redirects.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"
_cache: dict[tuple[str, str], str] = {}
_lock = threading.Lock()


def mlflow_ui_base(configured: str | None = None) -> str:
    return (os.environ.get("CEREBRO_MLFLOW_UI_URL") or configured or DEFAULT_MLFLOW_UI).rstrip("/")


def _sqlite_missing(tracking_uri: str) -> bool:
    """A sqlite tracking URI whose file does not exist: opening it would create it (not read-only)."""
    if not tracking_uri.startswith("sqlite:///"):
        return False
    return not Path(tracking_uri[len("sqlite:///"):]).exists()


def experiment_id(tracking_uri: str, experiment: str) -> str | None:
    """The experiment's id, or None (no such experiment yet, or MLflow unreachable). Found ids are cached."""
    key = (tracking_uri, experiment)
    if key in _cache:
        return _cache[key]
    if _sqlite_missing(tracking_uri):
        return None
    try:
        from mlflow.tracking import MlflowClient

        exp = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment)
    except Exception as exc:  # noqa: BLE001 - a page without experiment ids still links the runs
        log.warning("MLflow experiment %r at %s: %s", experiment, tracking_uri, exc)
        return None
    if exp is None:
        return None
    with _lock:
        _cache[key] = exp.experiment_id
    return exp.experiment_id


class MlflowLinks:
    """URL builder for one study's MLflow objects."""

    def __init__(self, base: str, experiment: str | None, model_name: str):
        self.base, self.experiment, self.model_name = base, experiment, model_name

    def run(self, run_id: str | None) -> str | None:
        if not run_id:
            return None
        if self.experiment:
            return f"{self.base}/#/experiments/{quote(self.experiment, safe='')}/runs/{quote(run_id, safe='')}"
        return f"{self.base}/#/runs/{quote(run_id, safe='')}"

    def model_version(self, version) -> str | None:
        if version in (None, ""):
            return None
        return f"{self.base}/#/models/{quote(self.model_name, safe='')}/versions/{quote(str(version), safe='')}"
