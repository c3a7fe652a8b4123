"""A generated study store for the UI plugin's tests and its load benchmark: a spec file and one run with its
state (configs, statuses, per-epoch history, MLflow ids, the champion decision) and hop records, written as a
real run writes them (RunRepository, one JSON record per unit), without training anything."""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

from cerebro_ops.core.run_state import EpochEntry, ModelStatus, RunRepository, RunState

SPEC = """\
name: {name}
description: '{description}'
data: {{source: /tmp/x.parquet, label: y, numeric: [a]}}
model: {{builder: "cerebro_ops.builders:mlp"}}
search: {{method: random, num_configs: {configs}, space: {{learning_rate: {{loguniform: [0.0001, 0.1]}}}}}}
train: {{epochs: {epochs}, workers: {workers}, metric: val_accuracy, direction: max}}
runtime: {{store: {store}, tracking_uri: "sqlite:///{tracking}", experiment: exp-{name}}}
"""


def write_spec(specs: Path, name: str, store: Path, configs: int = 4, epochs: int = 3, workers: int = 2,
               description: str = "generated study") -> Path:
    specs.mkdir(parents=True, exist_ok=True)
    path = specs / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, description=description.replace("'", "''"), configs=configs,
                                epochs=epochs, workers=workers, store=store.as_uri(),
                                tracking=store.parent / "no-mlflow.db"))
    return path


def accuracy(i: int, epoch: int) -> float:
    """Config i's validation accuracy after `epoch` epochs: rises with epochs, lower for higher i."""
    return round(0.6 + 0.3 * (1 - math.exp(-epoch / 3)) - 0.004 * i, 6)


def write_run(store: Path, name: str, run_id: str = "r1", configs: int = 4, epochs: int = 3, workers: int = 2,
              epochs_done: int | None = None, pruned: dict[int, int] | None = None, failed: tuple[int, ...] = (),
              params: dict[int, dict] | None = None, eval_in_train: bool = True, registered: bool = True,
              created: str = "2024-05-01T10:00:00", airflow: bool = True, seed: int = 0) -> RunState:
    """One run of `configs` configs: m00 is the best, config i's accuracy falls with i. `pruned` maps config
    index → the epoch it was pruned after; `failed` configs fail at epoch 1; `epochs_done` < `epochs` leaves
    the run training (no select, no decision). Hop records: `workers` partitions per model per epoch, with the
    evaluation inside the last train hop (`eval_in_train`) or as separate eval units."""
    pruned, params = pruned or {}, params or {}
    done = epochs if epochs_done is None else epochs_done
    rng = random.Random(seed)
    state = RunState(run_id=run_id, study=name, created=created, epochs=epochs, seed=seed, epochs_done=done,
                     overrides={"epochs": epochs}, prepared=True, partitioned=True, mlflow_parent=f"parent-{run_id}",
                     tags={"airflow.dag_id": f"cerebro_{name}", "airflow.run_id": run_id} if airflow else {})
    # what prepare reports: 40 rows without a label dropped, a column with missing values imputed
    state.meta = {"summary": {"rows_read": 1040, "rows_used": 1000, "train_rows": 800, "val_rows": 200,
                              "dropped": {"missing label": 40}, "missing_policy": "impute",
                              "columns": {"a <b>": {"missing": 312, "share": 0.3, "action": "imputed with the "
                                                    "train median 1.5 + a 0/1 missing indicator"}},
                              "constant": {}, "categories_cut": {}}}
    ids = [f"m{i:02d}" for i in range(configs)]
    for i, m in enumerate(ids):
        rec = state.add_model(m, params.get(i, {"learning_rate": 10 ** (-4 + 3 * i / max(configs, 1) + 0.0123),
                                               "hidden_units": 16 * (1 + i % 4)}), mlflow_run=f"child-{m}")
        if i in failed:
            rec.status, rec.reason = ModelStatus.FAILED, "ConfigFailed: loss is NaN at hop 0\ntraceback..."
            continue
        last = min(done, pruned.get(i, done))
        for e in range(1, last + 1):
            rec.history.append(EpochEntry(e, {"train_loss": round(0.7 / e + 0.01 * i, 6),
                                              "val_loss": round(0.75 / e + 0.012 * i, 6),
                                              "val_accuracy": accuracy(i, e)},
                                          {"ckpt": f"ckpt/{m}/e{e}-h{workers - 1}.npz", "sha256": "0" * 64}))
        if i in pruned and pruned[i] <= done:
            rec.status, rec.reason = ModelStatus.PRUNED, f"pruned by asha after epoch {pruned[i]}"
        elif done >= epochs:
            rec.status = ModelStatus.FINISHED
    repo = RunRepository(store.as_uri(), name, run_id)
    t = 1_714_557_600.0
    hoplog = []
    for e in range(1, done + 1):
        live = [m for i, m in enumerate(ids) if i not in failed and pruned.get(i, epochs + 1) >= e]
        free = [t] * workers
        for k in range(workers):  # MOP: model j visits partition (j + k) % W at its k-th hop
            for j, m in enumerate(live):
                w = (j + k) % workers
                start = free[w] + rng.uniform(0.005, 0.03)
                train_s = rng.uniform(0.2, 0.4)
                ev = rng.uniform(0.03, 0.06) if eval_in_train and k == workers - 1 else 0.0
                end = start + 0.04 + train_s + ev
                rec = {"model_id": m, "partition": w, "kind": "train", "hop": k, "epoch": e, "status": "ok",
                       "start": start, "end": end, "worker": w, "train_s": train_s, "read_s": 0.01,
                       "write_s": 0.01, "load_s": 0.01, "save_s": 0.01, "loss": 0.5, "n": 100,
                       "ckpt": f"ckpt/{m}/e{e}-h{k}.npz", "sha256": "0" * 64}
                if ev:
                    rec.update(eval_s=ev, metrics={"val_accuracy": 0.8})
                free[w] = end
                hoplog.append(rec)
                repo.store.write_json(f"hops/e{e}/{m}-train-p{w}.json", rec)
        if not eval_in_train:
            for j, m in enumerate(live):
                for w in range(workers):
                    start = free[w] + 0.01
                    end = start + rng.uniform(0.03, 0.06)
                    rec = {"model_id": m, "partition": w, "kind": "eval", "hop": 0, "epoch": e, "status": "ok",
                           "start": start, "end": end, "worker": w, "metrics": {"accuracy": 0.8}, "n": 50}
                    free[w] = end
                    hoplog.append(rec)
                    repo.store.write_json(f"hops/e{e}/{m}-eval-p{w}.json", rec)
        t = max(free) + 2.0  # the driver's work between epochs
    if done >= epochs and registered:
        best = ids[0] if 0 not in failed else next(m for i, m in enumerate(ids) if i not in failed)
        state.selected = best
        state.registered = {"model_id": best, "metric": "val_accuracy", "challenger": 0.905, "champion": 0.88,
                            "promoted": True, "version": "3", "replaced": "2",
                            "reason": "promoted: val_accuracy 0.905 > 0.88 of v2 on this run's validation rows"}
        repo.store.write_bytes("hoplog.jsonl", "".join(json.dumps(r) + "\n" for r in hoplog).encode())
    repo.save(state)
    return state


def add_epoch(store: Path, name: str, run_id: str, workers: int = 2) -> int:
    """What the next epoch of a training run writes: one more history entry per live model (and its hop
    records), epochs_done + 1. Returns the new epochs_done."""
    repo = RunRepository(store.as_uri(), name, run_id)
    state = repo.load()
    e = state.epochs_done + 1
    t = 1_714_600_000.0 + 10 * e
    for j, m in enumerate(state.live_models()):
        i = int(m[1:])
        state.models[m].history.append(EpochEntry(e, {"train_loss": round(0.7 / e, 6), "val_loss": round(0.75 / e, 6),
                                                      "val_accuracy": accuracy(i, e)}))
        for k in range(workers):
            w = (j + k) % workers
            repo.store.write_json(f"hops/e{e}/{m}-train-p{w}.json", {
                "model_id": m, "partition": w, "kind": "train", "hop": k, "epoch": e, "status": "ok",
                "start": t + k + j * 0.1, "end": t + k + j * 0.1 + 0.5, "worker": w, "train_s": 0.4})
    state.epochs_done = e
    repo.save(state)
    return e

