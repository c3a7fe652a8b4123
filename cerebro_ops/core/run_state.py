"""The state of one study run, typed, and the one place that reads and writes it (`state.json`).

On disk the state keeps the keys runs have always written (``configs``, ``status``, ``reasons``, ``ckpt``,
``history``, ``mlflow``, ``tpe``, ...), so runs prepared by earlier versions resume and the Airflow UI
plugin reads any run. In memory a run is a :class:`RunState` holding one :class:`ModelRecord` per config.
Pure: no Airflow, Spark or TensorFlow.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from cerebro_ops.core.errors import DataError
from cerebro_ops.core.spec import StudySpec, spec_from_dict

STATE_FILE = "state.json"


class ModelStatus(str, enum.Enum):
    """Where one config of the run stands. A str, so it compares with and serialises as its name."""

    RUNNING = "RUNNING"    # still trained by the coming epochs of its batch
    FINISHED = "FINISHED"  # trained for all the run's epochs (its batch is over)
    FAILED = "FAILED"      # a hop failed for a reason of the config; never trained again
    PRUNED = "PRUNED"      # stopped early by the pruner

    def __str__(self) -> str:
        return self.value


@dataclass
class EpochEntry:
    """One model's results of one epoch: train_loss and val_<metric> values, and its checkpoint then."""

    epoch: int
    metrics: dict[str, float | None]
    ckpt: dict | None = None  # {"ckpt": path relative to the run store, "sha256": ...}

    def value(self, metric: str) -> float | None:
        return self.metrics.get(metric)

    def to_json(self) -> dict:
        return {"epoch": self.epoch, **self.metrics, "ckpt": self.ckpt}

    @classmethod
    def from_json(cls, d: dict) -> EpochEntry:
        return cls(int(d["epoch"]), {k: v for k, v in d.items() if k not in ("epoch", "ckpt")}, d.get("ckpt"))


@dataclass
class ModelRecord:
    """One config of the run: its hyperparameters, status, latest checkpoint and per-epoch history."""

    model_id: str
    params: dict[str, Any]
    status: ModelStatus = ModelStatus.RUNNING
    reason: str = ""                      # why it failed or was pruned
    ckpt: dict | None = None              # checkpoint after its last trained epoch (None before epoch 1)
    history: list[EpochEntry] = field(default_factory=list)
    mlflow_run: str | None = None         # its MLflow child run

    @property
    def live(self) -> bool:
        return self.status is ModelStatus.RUNNING


@dataclass
class TpeBatches:
    """A TPE run's batches: the model ids asked so far, batch by batch, and the planned batch sizes."""

    batches: list[list[str]]
    sizes: list[int]


@dataclass
class ReplayOf:
    """The recorded run a replay re-runs: its configs, and its TPE batches (asked again from these)."""

    run_id: str
    configs: dict[str, dict]
    batches: list[list[str]] | None = None


@dataclass(repr=False)
class RunState:
    run_id: str
    study: str = ""
    created: str = ""
    overrides: dict = field(default_factory=dict)   # the trigger overrides, as validated
    spec: dict | None = None       # the effective spec at prepare (StudySpec.to_dict); None: an older run
    epochs: int = 0                # epochs of every batch
    seed: int = 0
    models: dict[str, ModelRecord] = field(default_factory=dict)
    epochs_done: int = 0           # of the current batch
    tpe: TpeBatches | None = None  # None: one batch of every model (grid, random)
    meta: dict = field(default_factory=dict)        # the prepared data (spark/prepare.py)
    tags: dict = field(default_factory=dict)
    mlflow_parent: str | None = None
    replay_of: ReplayOf | None = None
    prepared: bool = False
    partitioned: bool = False
    selected: str | None = None
    registered: dict | None = None  # the register step's decision
    extra: dict = field(default_factory=dict)       # keys this version does not know, kept as they were

    # ------------------------------------------------------------------ batches
    @property
    def batch_count(self) -> int:
        return len(self.tpe.sizes) if self.tpe else 1

    @property
    def current_batch(self) -> int:
        return len(self.tpe.batches) - 1 if self.tpe else 0

    # ------------------------------------------------------------------ models
    @property
    def configs(self) -> dict[str, dict]:
        return {m: r.params for m, r in self.models.items()}

    def live_models(self) -> list[str]:
        return [m for m, r in self.models.items() if r.live]

    def with_status(self, status: ModelStatus) -> list[str]:
        return sorted(m for m, r in self.models.items() if r.status is status)

    def add_model(self, model_id: str, params: dict, mlflow_run: str | None = None) -> ModelRecord:
        rec = self.models[model_id] = ModelRecord(model_id, params, mlflow_run=mlflow_run)
        return rec

    def __repr__(self) -> str:  # the Airflow task log prints a step's result: keep it one short line
        return (f"RunState(run_id={self.run_id!r}, models={len(self.models)}, batch={self.current_batch + 1}/"
                f"{self.batch_count}, epochs={self.epochs_done}/{self.epochs}, prepared={self.prepared}, "
                f"partitioned={self.partitioned}, selected={self.selected!r})")

    # ------------------------------------------------------------------ state.json
    def to_json(self) -> dict:
        out: dict[str, Any] = dict(self.extra)
        out.update({
            "run_id": self.run_id, "study": self.study, "created": self.created, "overrides": self.overrides,
            "epochs": self.epochs, "seed": self.seed, "epochs_done": self.epochs_done, "tags": self.tags,
            "configs": {m: r.params for m, r in self.models.items()},
            "status": {m: r.status.value for m, r in self.models.items()},
            "reasons": {m: r.reason for m, r in self.models.items() if r.reason},
            "ckpt": {m: r.ckpt for m, r in self.models.items()},
            "history": {m: [e.to_json() for e in r.history] for m, r in self.models.items()},
            "mlflow": {"parent": self.mlflow_parent,
                       "children": {m: r.mlflow_run for m, r in self.models.items() if r.mlflow_run}},
            "meta": self.meta,
        })
        optional = {"prepared": self.prepared or None, "partitioned": self.partitioned or None,  # as steps set them
                    "selected": self.selected, "registered": self.registered, "spec": self.spec,
                    "tpe": {"batches": self.tpe.batches, "sizes": self.tpe.sizes} if self.tpe else None,
                    "replay_of": ({"run_id": self.replay_of.run_id, "configs": self.replay_of.configs,
                                   "batches": self.replay_of.batches} if self.replay_of else None)}
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    @classmethod
    def from_json(cls, d: dict) -> RunState:
        """A state.json of any version: missing keys take their defaults, unknown keys are kept."""
        configs = d.get("configs") or {}
        status, reasons = d.get("status") or {}, d.get("reasons") or {}
        ckpts, history = d.get("ckpt") or {}, d.get("history") or {}
        mlflow = d.get("mlflow") or {}
        children = mlflow.get("children") or {}
        models = {m: ModelRecord(m, params, ModelStatus(status.get(m, ModelStatus.RUNNING.value)),
                                 reasons.get(m, ""), ckpts.get(m),
                                 [EpochEntry.from_json(e) for e in history.get(m, [])], children.get(m))
                  for m, params in configs.items()}
        tpe = d.get("tpe")
        rep = d.get("replay_of")
        return cls(
            run_id=d.get("run_id", ""), study=d.get("study", ""), created=d.get("created", ""),
            overrides=d.get("overrides") or {}, spec=d.get("spec"), epochs=int(d.get("epochs", 0)),
            seed=int(d.get("seed", 0)), models=models, epochs_done=int(d.get("epochs_done", 0)),
            tpe=TpeBatches([list(b) for b in tpe["batches"]], list(tpe["sizes"])) if tpe else None,
            meta=d.get("meta") or {}, tags=d.get("tags") or {}, mlflow_parent=mlflow.get("parent"),
            replay_of=ReplayOf(rep["run_id"], rep["configs"], rep.get("batches")) if rep else None,
            prepared=bool(d.get("prepared")), partitioned=bool(d.get("partitioned")),
            selected=d.get("selected"), registered=d.get("registered"),
            extra={k: v for k, v in d.items() if k not in _KNOWN_KEYS})


_KNOWN_KEYS = {"run_id", "study", "created", "overrides", "spec", "epochs", "seed", "configs", "status",
               "reasons", "ckpt", "history", "epochs_done", "tpe", "meta", "tags", "mlflow", "replay_of",
               "prepared", "partitioned", "selected", "registered"}


class RunRepository:
    """The state of one run in the store: the only code that reads or writes a state.json."""

    def __init__(self, store_uri: str, study: str, run_id: str):
        from cerebro_ops.store import run_store  # fsspec: not needed by the pure users of the types above

        self.run_id = run_id
        self.study = study
        self.store = run_store(store_uri, study, run_id)  # the run's directory (data, hops, ckpt)

    def exists(self) -> bool:
        return self.store.exists(STATE_FILE)

    def find(self) -> RunState | None:
        """The state, or None when the run has none (yet)."""
        return self.load() if self.exists() else None

    def raw(self) -> bytes:
        """state.json as stored (b"" before prepare): what changes whenever the state does."""
        return self.store.read_bytes(STATE_FILE) if self.exists() else b""

    def load(self) -> RunState:
        if not self.exists():
            raise DataError("run_id", f"run {self.run_id!r} of study {self.study!r} has not been prepared",
                            "run the prepare step first (cerebro-ops run, or the DAG's prepare task)")
        return RunState.from_json(self.store.read_json(STATE_FILE))

    def save(self, state: RunState) -> None:
        """Atomic: a reader sees the previous state or this one, never half of it."""
        self.store.write_json(STATE_FILE, state.to_json())

    def delete(self) -> None:
        """The whole run: its state and every file of it."""
        self.store.delete("")

    @staticmethod
    def all(store_uri: str, study: str) -> list[RunState]:
        """Every run of the study with a state, newest first."""
        from cerebro_ops.store import Store

        base = Store(store_uri).sub(study, "runs")
        states = [RunState.from_json(base.read_json(f"{name}/{STATE_FILE}")) for name in base.listdir()
                  if base.exists(f"{name}/{STATE_FILE}")]
        return sorted(states, key=lambda s: (s.created, s.run_id), reverse=True)

    @staticmethod
    def latest(store_uri: str, study: str, unfinished: bool = False) -> str | None:
        """The run id of the study's most recently created run (`unfinished`: not registered yet)."""
        runs = [s for s in RunRepository.all(store_uri, study) if not (unfinished and s.registered)]
        return runs[0].run_id if runs else None


def effective_spec(spec: StudySpec, state: RunState) -> StudySpec:
    """The spec the run was prepared with: its snapshot (runs prepared before snapshots existed: the
    given spec with the run's overrides)."""
    return spec_from_dict(state.spec) if state.spec is not None else spec.with_overrides(**state.overrides)
