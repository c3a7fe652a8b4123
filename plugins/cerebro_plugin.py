"""Airflow 3 UI plugin: a leaderboard page for every cerebro-ops study, mounted at ``/cerebro``.

For each spec in ``<dags_folder>/specs`` (or ``$CEREBRO_SPECS_DIR``): the latest run of the study and its
leaderboard — ``leaderboard.json``, which ``select`` writes in the run's store folder, or, while the run is
still training, the live ranking from the run state. It reads the store only, never MLflow; the page
links the MLflow parent run id.
Heavy imports (the study code, fsspec stores) happen per request, never at plugin load.
"""
from __future__ import annotations

import html
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

log = logging.getLogger(__name__)

URL_PREFIX = "/cerebro"
API_BASE_PATH = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
TOP_N = 10


def _ensure_importable() -> None:
    try:
        import cerebro_ops  # noqa: F401
    except ImportError:  # running from a checkout: the repository root holds cerebro_ops
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def specs_dir() -> Path:
    env = os.environ.get("CEREBRO_SPECS_DIR")
    if env:
        return Path(env)
    return Path(conf.get("core", "dags_folder", fallback=str(Path(__file__).resolve().parent.parent / "dags"))) / "specs"


def _guard(fn: Callable[..., Any], *args: Any) -> tuple[Any, str | None]:
    """The one error handler of this page: (value, None) or (None, 'ErrorType: message')."""
    try:
        return fn(*args), None
    except Exception as exc:  # noqa: BLE001 - a broken study must not break the page
        # our own errors (bad spec, missing run) carry their fix; anything else gets a traceback in the log
        log.warning("cerebro leaderboard: %s", exc, exc_info=not type(exc).__module__.startswith("cerebro_ops"))
        return None, f"{type(exc).__name__}: {exc}"


def study_board(spec_path: Path) -> dict:
    """Leaderboard of the latest run of one study (raises on any problem; see :func:`_guard`)."""
    _ensure_importable()
    from cerebro_ops import study
    from cerebro_ops.leaderboard import leaderboard_rows
    from cerebro_ops.spec import load_spec
    from cerebro_ops.store import run_store

    spec = load_spec(spec_path)
    board = {"study": spec.name, "dag_id": spec.dag_id, "metric": spec.train.metric, "run_id": None, "rows": []}
    run_id = study.latest_run(spec)
    if run_id is None:
        return board
    state = study.load_run(spec, run_id)
    eff = study.run_spec(spec, state)
    st = run_store(spec.runtime.store, spec.name, run_id)
    rows = (st.read_json("leaderboard.json") if st.exists("leaderboard.json")
            else leaderboard_rows(state, eff.train.metric, eff.train.direction))
    board.update(run_id=run_id, metric=eff.train.metric, rows=rows,
                 epochs=f"{state.epochs_done}/{state.epochs}", mlflow_run=state.mlflow_parent,
                 champion=state.registered)
    return board


def all_boards() -> list[dict]:
    from cerebro_ops.airflow.dag_factory import spec_files  # noqa: PLC0415 - cheap, pure + airflow.sdk

    boards = []
    for path in spec_files(specs_dir()):
        board, error = _guard(study_board, path)
        boards.append(board if error is None else {"study": path.stem, "error": error, "rows": []})
    return boards


def _render(boards: list[dict]) -> str:
    e = html.escape
    parts = ["<html><head><title>cerebro-ops leaderboard</title><style>"
             "body{font-family:sans-serif;margin:1em}table{border-collapse:collapse;margin-bottom:1.5em}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.err{color:#b00}</style></head><body>",
             "<h1>cerebro-ops studies</h1>"]
    if not boards:
        parts.append(f"<p>No study specs in {e(str(specs_dir()))}.</p>")
    for b in boards:
        parts.append(f"<h2>{e(b['study'])}</h2>")
        if b.get("error"):
            parts.append(f"<p class='err'>{e(b['error'])}</p>")
            continue
        if not b.get("run_id"):
            parts.append("<p>No runs yet.</p>")
            continue
        champ = b.get("champion") or {}
        parts.append(f"<p>run <code>{e(str(b['run_id']))}</code>, epochs {e(str(b.get('epochs')))}, "
                     f"MLflow run <code>{e(str(b.get('mlflow_run')))}</code>"
                     + (f", champion v{e(str(champ.get('version')))} ({'promoted' if champ.get('promoted') else 'kept'})"
                        if champ else "") + "</p>")
        metric = b["metric"]
        parts.append(f"<table><tr><th>rank</th><th>model</th><th>status</th><th>{e(metric)}</th>"
                     "<th>best epoch</th><th>params</th></tr>")
        for r in b["rows"][:TOP_N]:
            v = r.get(metric)
            params = ", ".join(f"{k}={p}" for k, p in sorted((r.get("params") or {}).items()))
            parts.append(f"<tr><td>{e(str(r.get('rank')))}</td><td>{e(str(r.get('model_id')))}</td>"
                         f"<td>{e(str(r.get('status')))}</td><td>{'-' if v is None else f'{v:.5g}'}</td>"
                         f"<td>{e(str(r.get('best_epoch')))}</td><td>{e(params)}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)


def create_app() -> FastAPI:
    app = FastAPI(title="cerebro-ops")

    @app.get("/", response_class=HTMLResponse)
    def leaderboard_page() -> str:
        _ensure_importable()
        boards, error = _guard(all_boards)
        return _render(boards) if error is None else f"<p class='err'>{html.escape(error)}</p>"

    @app.get("/api/leaderboard")
    def leaderboard_json() -> JSONResponse:
        _ensure_importable()
        boards, error = _guard(all_boards)
        return JSONResponse({"studies": boards} if error is None else {"error": error},
                            status_code=200 if error is None else 500)

    return app


class CerebroPlugin(AirflowPlugin):
    name = "cerebro"
    fastapi_apps = [{"name": "cerebro", "app": create_app(), "url_prefix": URL_PREFIX}]
    external_views = [{
        "name": "Cerebro leaderboard",
        "href": f"{API_BASE_PATH}{URL_PREFIX}/",
        "destination": "nav",
        "category": "browse",
        "url_route": "cerebro",
    }]
