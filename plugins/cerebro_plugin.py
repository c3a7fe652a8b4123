"""Airflow 3 UI plugin: the cerebro-ops pages, mounted at ``/cerebro`` and linked from the "Browse" menu.

Per study (every spec in ``<dags_folder>/specs`` or ``$CEREBRO_SPECS_DIR``): its runs with their trigger
Params, state and best metric. Per run: the leaderboard (rank by the study's metric and direction, status,
best epoch, MLflow links, the champion/challenger decision), the learning curves and the MOP Gantt chart of
its hop log. While a run trains, its pages poll a small JSON endpoint and swap in the new content.

Every route needs an Airflow user (the JWT of the ``_token`` cookie or an ``Authorization: Bearer`` header,
resolved by Airflow's own ``get_user``) who may read the study's DAG (``is_authorized_dag``, method GET):
anonymous → 401 (HTML pages redirect to the login page), no access to the DAG → 403.
Read-only: the store and (for experiment ids) the MLflow tracking store. Templates are Jinja2 with
autoescape; a per-response Content-Security-Policy allows only this page's own inline script.
Heavy imports (the study code, fsspec, MLflow) happen per request, never at plugin load.
"""
from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPBearer
from jinja2 import Environment, FileSystemLoader

log = logging.getLogger(__name__)

URL_PREFIX = "/cerebro"
API_BASE_PATH = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
TEMPLATES = Path(__file__).resolve().parent / "templates"
_bearer = HTTPBearer(auto_error=False)


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


def poll_seconds() -> float:
    return float(os.environ.get("CEREBRO_UI_POLL_SECONDS") or conf.get("cerebro", "ui_poll_seconds", fallback="5"))


def mlflow_ui_url() -> str:
    from cerebro_ops.ui.links import mlflow_ui_base

    return mlflow_ui_base(conf.get("cerebro", "mlflow_ui_url", fallback=None))


# ---------------------------------------------------------------------------------------------- access
class LoginRequired(Exception):
    """An HTML page asked for without a valid Airflow session: the handler redirects to the login page."""


def _wants_html(request: Request) -> bool:
    """Pages (HTML) vs the JSON endpoints under /api, by the path inside this app."""
    path, root = request.url.path, request.scope.get("root_path", "")
    return not (path[len(root):] if root and path.startswith(root) else path).startswith("/api/")


async def current_user(request: Request) -> Any:
    """The Airflow user of this request, exactly as Airflow's own routes resolve it."""
    from airflow.api_fastapi.core_api.security import get_user

    _ensure_importable()

    try:
        return await get_user(request, None, await _bearer(request))
    except HTTPException as exc:
        # Airflow answers 403 for a malformed token; here any unusable credential is "not authenticated"
        if _wants_html(request):
            raise LoginRequired() from exc
        raise HTTPException(401, "Not authenticated: log in to Airflow or send a Bearer token") from exc


def can_read_dag(user: Any, dag_id: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    team = None
    if conf.getboolean("core", "multi_team", fallback=False):
        from airflow.models.dag import DagModel

        team = DagModel.get_team_name(dag_id)
    return get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=dag_id, team_name=team),
                                                user=user)


def _studies():
    from cerebro_ops.ui.views import discover

    return discover(specs_dir())


def study_dag_id(study) -> str:
    """The id of the DAG that exists for `study`: cerebro_<name>, or for a broken spec the placeholder DAG
    cerebro_<file stem>_invalid (access is granted per DAG id; an id that exists nowhere proves nothing)."""
    if study.spec is not None:
        return study.dag_id
    from cerebro_ops.airflow.dag_factory import invalid_dag_id

    return invalid_dag_id(study.path)


def readable_study(study: str, user: Any):
    """The study named `study` if the user may read its DAG: 403 otherwise, 404 if there is no such study
    (a name that is no study is checked as cerebro_<name>, so a user without access learns nothing about
    which studies exist)."""
    _ensure_importable()
    found = next((s for s in _studies() if s.name == study), None)
    dag_id = study_dag_id(found) if found is not None else f"cerebro_{study}"
    if not can_read_dag(user, dag_id):
        raise HTTPException(403, f"no read access to DAG {dag_id}")
    if found is None:
        raise HTTPException(404, f"no study {study!r}")
    return found


# ---------------------------------------------------------------------------------------------- rendering
_env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True)


def _q(part: Any) -> str:
    return quote(str(part), safe="")


def render(request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    from cerebro_ops.ui import views

    nonce = secrets.token_urlsafe(16)
    root = request.scope.get("root_path", "").rstrip("/")
    html = _env.get_template(template).render(
        nonce=nonce, root=root, airflow=API_BASE_PATH, q=_q, fmt=views.fmt_value, fmt_metric=views.fmt_metric,
        fmt_s=views.fmt_seconds, **ctx)
    resp = HTMLResponse(html, status_code=status)
    resp.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _links(spec):
    from cerebro_ops.ui.links import MlflowLinks, experiment_id

    return MlflowLinks(mlflow_ui_url(), experiment_id(spec.runtime.tracking_uri, spec.runtime.experiment), spec.name)


def _usable_run_id(run_id: str, study_name: str) -> None:
    """404 for a run id that cannot name a run folder (e.g. '..'), after the access check has passed."""
    from cerebro_ops.core.errors import StoreError
    from cerebro_ops.store import safe_run_id

    try:
        safe_run_id(run_id)
    except StoreError:
        raise HTTPException(404, f"no run {run_id!r} of study {study_name!r}") from None


def _run_page_ctx(study_name: str, run_id: str, user: Any) -> dict:
    from cerebro_ops.ui import views

    study = readable_study(study_name, user)
    _usable_run_id(run_id, study_name)
    if study.spec is None:
        raise HTTPException(404, f"study {study_name!r} has a broken spec: {study.error}")
    version = views.fingerprint(study.spec, run_id)  # before reading: a change meanwhile shows at the next poll
    view = views.run_view(study, run_id)
    if view is None:
        raise HTTPException(404, f"no run {run_id!r} of study {study_name!r}")
    return {"study": study, "view": view, "links": _links(view.spec), "version": version,
            "live": views.is_live(view.state), "poll_ms": int(poll_seconds() * 1000)}


def _curves_ctx(view) -> dict:
    from cerebro_ops.ui import charts, views

    state, spec = view.state, view.spec
    palette = charts.colours(list(state.models))
    best = next((r.model_id for r in view.board if r.rank == 1), None)
    metric = spec.train.metric
    keys = [(metric, f"{metric} (best: {spec.train.direction})")]
    keys += [(k, k) for k in ("train_loss", "val_loss") if k != metric and k in views.history_keys(state)]
    return {"charts": [charts.line_chart(k, title, views.curves(state, k), palette, best, state.epochs,
                                         height=360 if i == 0 else 260)
                       for i, (k, title) in enumerate(keys)],
            "palette": palette, "best": best}


def _gantt_ctx(view, scale: str) -> dict:
    from cerebro_ops.ui import charts, views

    records = views.hop_records(view.spec, view.state)
    palette = charts.colours(list(view.state.models))
    equal = scale == "epoch"
    return {"gantt": charts.gantt(records, palette, views.model_batches(view.state), view.spec.train.workers,
                                  equal_epochs=equal),
            "palette": palette, "records": len(records), "scale": "epoch" if equal else "time"}


def create_app() -> FastAPI:
    app = FastAPI(title="cerebro-ops", docs_url=None, redoc_url=None, openapi_url=None)
    _add_error_handlers(app)
    _add_pages(app)
    _add_json_api(app)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> Response:
        from airflow.api_fastapi.app import get_auth_manager

        login = get_auth_manager().get_url_login(next_url=str(request.url))
        if login.startswith("/") and API_BASE_PATH and not login.startswith(API_BASE_PATH + "/"):
            login = API_BASE_PATH + login
        return RedirectResponse(login, status_code=303)

    @app.exception_handler(HTTPException)
    async def _errors(request: Request, exc: HTTPException) -> Response:
        if _wants_html(request):
            return render(request, "cerebro/error.html", status=exc.status_code, code=exc.status_code,
                          detail=str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _add_pages(app: FastAPI) -> None:
    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, user: Any = Depends(current_user)) -> Response:
        _ensure_importable()
        from cerebro_ops.ui import views

        studies = _studies()
        allowed = [s for s in studies if can_read_dag(user, study_dag_id(s))]
        if studies and not allowed:
            raise HTTPException(403, "no read access to any cerebro study DAG")
        rows = []
        for s in allowed:
            latest = None
            if s.spec is not None:
                try:
                    states = views.run_states(s.spec)
                    latest = views.summarise(s.spec, states[0]) if states else None
                except Exception:  # noqa: BLE001 - an unreadable store must not hide the other studies
                    # its message can name paths, hosts or credentials of the store: the log has it, not the page
                    log.exception("cerebro UI: the runs of study %s could not be read", s.name)
                    s.error = "its run store could not be read (the api-server's log has the details)"
            rows.append({"study": s, "latest": latest})
        return render(request, "cerebro/index.html", rows=rows, specs_dir=str(specs_dir()))

    @app.get("/studies/{study}", response_class=HTMLResponse)
    def study_page(request: Request, study: str, user: Any = Depends(current_user)) -> Response:
        from cerebro_ops.ui import views

        s = readable_study(study, user)
        runs = [views.summarise(s.spec, st) for st in views.run_states(s.spec)] if s.spec else []
        return render(request, "cerebro/study.html", study=s, runs=runs)

    @app.get("/studies/{study}/runs/{run_id}", response_class=HTMLResponse)
    def leaderboard_page(request: Request, study: str, run_id: str, user: Any = Depends(current_user)) -> Response:
        return render(request, "cerebro/leaderboard.html", tab="leaderboard", **_run_page_ctx(study, run_id, user))

    @app.get("/studies/{study}/runs/{run_id}/curves", response_class=HTMLResponse)
    def curves_page(request: Request, study: str, run_id: str, user: Any = Depends(current_user)) -> Response:
        ctx = _run_page_ctx(study, run_id, user)
        return render(request, "cerebro/curves.html", tab="curves", **ctx, **_curves_ctx(ctx["view"]))

    @app.get("/studies/{study}/runs/{run_id}/gantt", response_class=HTMLResponse)
    def gantt_page(request: Request, study: str, run_id: str, scale: str = "time",
                   user: Any = Depends(current_user)) -> Response:
        """`scale=epoch`: every epoch the same width (a slow first epoch does not squeeze the others)."""
        ctx = _run_page_ctx(study, run_id, user)
        return render(request, "cerebro/gantt.html", tab="gantt", **ctx, **_gantt_ctx(ctx["view"], scale))


def _add_json_api(app: FastAPI) -> None:
    @app.get("/api/studies/{study}/runs/{run_id}/version")
    def run_version(study: str, run_id: str, user: Any = Depends(current_user)) -> JSONResponse:
        """What a live page polls: a fingerprint of the run state and hop records, and whether it still runs."""
        from cerebro_ops.ui import views

        s = readable_study(study, user)
        _usable_run_id(run_id, study)
        state = views.load_state(s.spec, run_id) if s.spec else None
        if state is None:
            raise HTTPException(404, f"no run {run_id!r} of study {study!r}")
        return JSONResponse({"version": views.fingerprint(s.spec, run_id), "live": views.is_live(state),
                             "epochs_done": state.epochs_done}, headers={"Cache-Control": "no-store"})

    @app.get("/api/studies/{study}/runs/{run_id}")
    def run_json(study: str, run_id: str, user: Any = Depends(current_user)) -> JSONResponse:
        """The run's leaderboard and decision as JSON (for scripts)."""
        ctx = _run_page_ctx(study, run_id, user)
        view = ctx["view"]
        return JSONResponse({
            "study": study, "run_id": view.state.run_id, "phase": view.summary.phase_text,
            "metric": view.spec.train.metric, "direction": view.spec.train.direction, "decision": view.decision,
            "leaderboard": [{"rank": r.rank, "model_id": r.model_id, "status": r.status_text, "value": r.value,
                             "best_epoch": r.best_epoch, "epochs": r.epochs, "params": dict(r.params),
                             "mlflow_run": r.child_run} for r in view.board]})


class CerebroPlugin(AirflowPlugin):
    name = "cerebro"
    fastapi_apps = [{"name": "cerebro", "app": create_app(), "url_prefix": URL_PREFIX}]
    external_views = [{
        "name": "Cerebro studies",
        "href": f"{API_BASE_PATH}{URL_PREFIX}/",
        "destination": "nav",
        "category": "browse",
        "url_route": "cerebro",
    }]
