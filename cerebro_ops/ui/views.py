"""Read-only view models of studies and their runs, from the spec files and the store.

Everything is read from the run state (through its RunRepository) and the hop records (through their
RecordLog), so a page shows a run while it trains as well as after it: the leaderboard is leaderboard.py's
ranking, the curves are the per-epoch history, the Gantt chart is the hop log. Nothing here writes to the store.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cerebro_ops.core.leaderboard import is_ranked, leaderboard_rows
from cerebro_ops.core.prepare_summary import summary_lines
from cerebro_ops.core.run_state import ModelRecord, ModelStatus, RunRepository, RunState, effective_spec
from cerebro_ops.core.spec import StudySpec, load_spec
from cerebro_ops.mop.records import RecordLog

SPEC_SUFFIXES = (".yaml", ".yml")


# ---------------------------------------------------------------------------------------------- studies
@dataclass
class Study:
    name: str                   # the spec's name; the file stem when the spec does not load
    path: Path
    spec: StudySpec | None
    error: str | None = None    # why the spec does not load (shown instead of its runs)

    @property
    def dag_id(self) -> str:
        return self.spec.dag_id if self.spec else f"cerebro_{self.name}"


def discover(specs_dir: Path) -> list[Study]:
    """Every spec file of the DAG folder's specs directory, sorted by file name; broken ones with their error."""
    if not specs_dir.is_dir():
        return []
    studies = []
    for path in sorted(p for p in specs_dir.iterdir() if p.is_file() and p.suffix in SPEC_SUFFIXES):
        try:
            spec = load_spec(path)
            studies.append(Study(spec.name, path, spec))
        except Exception as exc:  # noqa: BLE001 - one broken spec must not hide the others
            studies.append(Study(path.stem, path, None, f"{type(exc).__name__}: {exc}"))
    return studies


# ---------------------------------------------------------------------------------------------- formatting
def fmt_value(v: Any) -> str:
    """Compact: floats to 4 significant digits (learning rates 0.001234, 1e-05), the rest as written."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, (int, str)):
        return str(v)
    return json.dumps(v, sort_keys=True, default=str)


def fmt_metric(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.4g}"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return ""
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s" if s < 60 else f"{s / 60:.1f} min"


# ---------------------------------------------------------------------------------------------- runs
def run_states(spec: StudySpec) -> list[RunState]:
    """Every run of the study with a state, newest first."""
    return RunRepository.all(spec.runtime.store, spec.name)


def repository(spec: StudySpec, run_id: str) -> RunRepository:
    return RunRepository(spec.runtime.store, spec.name, run_id)


def load_state(spec: StudySpec, run_id: str) -> RunState | None:
    return repository(spec, run_id).find()


def effective(spec: StudySpec, state: RunState) -> StudySpec:
    """The spec the run trains with (run_state.effective_spec), or this spec when that does not load."""
    try:
        return effective_spec(spec, state)
    except Exception:  # noqa: BLE001 - a snapshot of an older version: the current spec still names the metric
        return spec


def run_phase(state: RunState) -> tuple[str, str]:
    """(css key, text) of where the run stands."""
    models = state.models.values()
    if state.registered:
        d = state.registered
        return "finished", (f"finished: champion v{d.get('version')} promoted" if d.get("promoted")
                            else f"finished: champion v{d.get('version')} kept")
    if models and all(r.status is ModelStatus.FAILED for r in models):
        return "failed", "failed: every config failed"
    if state.selected:
        return "selected", "selected, registering"
    if not state.prepared:
        return "running", "preparing"
    batch = f"batch {state.current_batch + 1}/{state.batch_count}, " if state.batch_count > 1 else ""
    if state.epochs_done >= state.epochs and state.current_batch + 1 >= state.batch_count:
        return "running", "trained, selecting"
    return "running", f"training: {batch}epoch {state.epochs_done + 1}/{state.epochs}"


def is_live(state: RunState) -> bool:
    return run_phase(state)[0] in ("running", "selected")


@dataclass
class RunSummary:
    run_id: str
    created: str
    phase: str
    phase_text: str
    params: list[tuple[str, str]]     # the trigger Params as the run used them
    best_model: str | None
    best_value: float | None
    metric: str
    configs: int
    dag_id: str | None                 # set when Airflow ran it (the DAG run link)


def trigger_params(state: RunState) -> list[tuple[str, str]]:
    """The run's trigger Params: seed and epochs as it ran, then every override it was triggered with."""
    shown = {"seed": state.seed, "epochs": state.epochs, **state.overrides}
    return [(k, fmt_value(v)) for k, v in shown.items()]


def summarise(spec: StudySpec, state: RunState) -> RunSummary:
    eff = effective(spec, state)
    board = leaderboard(state, eff.train.metric, eff.train.direction)
    top = board[0] if board and board[0].rank is not None else None
    phase, text = run_phase(state)
    return RunSummary(state.run_id, state.created, phase, text, trigger_params(state),
                      top.model_id if top else None, top.value if top else None, eff.train.metric,
                      len(state.models), state.tags.get("airflow.dag_id"))


# ---------------------------------------------------------------------------------------------- leaderboard
@dataclass
class BoardRow:
    rank: int | None          # None: not ranked (no metric yet, or failed)
    model_id: str
    params: list[tuple[str, str]]
    status: str               # css key: running | pruned | failed | finished
    status_text: str
    reason: str
    value: float | None
    best_epoch: int | None
    epochs: int
    child_run: str | None


def status_text(rec: ModelRecord) -> str:
    if rec.status is ModelStatus.PRUNED:
        return f"pruned at epoch {len(rec.history)}"
    if rec.status is ModelStatus.FAILED:
        first = (rec.reason or "").strip().splitlines()
        return f"failed: {first[0][:160]}" if first else "failed"
    if rec.status is ModelStatus.RUNNING:
        return f"running (epoch {len(rec.history)} done)" if rec.history else "running"
    return "finished"


def leaderboard(state: RunState, metric: str, direction: str) -> list[BoardRow]:
    """leaderboard.py's rows: configs with a metric, best first by the study's direction (ranks 1..k), then
    the others unranked: running ones still without a metric, then failed ones."""
    out = []
    for r in leaderboard_rows(state, metric, direction):
        rec = state.models[r["model_id"]]
        out.append(BoardRow(r["rank"] if is_ranked(r, metric) else None, rec.model_id,
                            [(k, fmt_value(v)) for k, v in sorted(rec.params.items())], rec.status.value.lower(),
                            status_text(rec), rec.reason, r[metric], r["best_epoch"], r["epochs"], rec.mlflow_run))
    return out


# ---------------------------------------------------------------------------------------------- curves
@dataclass
class Curve:
    model_id: str
    status: str
    points: list[tuple[int, float]]   # (epoch, value), finite values only


def curves(state: RunState, key: str) -> list[Curve]:
    """One curve of `key` per config that has any value of it, in the state's config order."""
    out = []
    for m, rec in state.models.items():
        pts = [(h.epoch, float(h.value(key))) for h in rec.history
               if isinstance(h.value(key), (int, float)) and math.isfinite(h.value(key))]
        if pts:
            out.append(Curve(m, rec.status.value.lower(), pts))
    return out


def history_keys(state: RunState) -> list[str]:
    keys: set[str] = set()
    for rec in state.models.values():
        for h in rec.history:
            keys.update(k for k, v in h.metrics.items() if isinstance(v, (int, float)))
    return sorted(keys)


# ---------------------------------------------------------------------------------------------- hop log
def hop_records(spec: StudySpec, state: RunState) -> list[dict]:
    """The run's finished units (train and eval records), oldest first. After select the hop log file;
    while training the per-unit records of every epoch so far."""
    return RecordLog(repository(spec, state.run_id).store).finished()


def model_batches(state: RunState) -> dict[str, int]:
    """model id → its TPE batch (0 for grid and random): epochs count from 1 in every batch."""
    if not state.tpe:
        return {m: 0 for m in state.models}
    return {m: b for b, ids in enumerate(state.tpe.batches) for m in ids}


# ---------------------------------------------------------------------------------------------- live
def fingerprint(spec: StudySpec, run_id: str) -> str:
    """Changes whenever the run state or the set of hop records changes: what the live pages poll."""
    repo = repository(spec, run_id)
    h = hashlib.sha256(repo.raw())
    RecordLog(repo.store).digest(h)
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- one run
@dataclass
class RunView:
    study: Study
    spec: StudySpec                 # the run's effective spec
    state: RunState
    summary: RunSummary
    board: list[BoardRow]
    decision: dict | None           # the register step's champion/challenger decision
    extra: dict = field(default_factory=dict)

    @property
    def data_lines(self) -> list[str]:
        """What prepare did to the rows (read, used, dropped and why, missing values per column)."""
        return summary_lines((self.state.meta or {}).get("summary") or {})


def run_view(study: Study, run_id: str) -> RunView | None:
    assert study.spec is not None
    state = load_state(study.spec, run_id)
    if state is None:
        return None
    eff = effective(study.spec, state)
    return RunView(study, eff, state, summarise(study.spec, state),
                   leaderboard(state, eff.train.metric, eff.train.direction), state.registered)
