"""Replay: re-run a recorded run with its spec, configs (and TPE batches), seed and overrides under a new run
id, and list where the two differ (``cerebro-ops replay``). Empty differences = the run is reproducible."""
from __future__ import annotations

import dataclasses

from cerebro_ops.core.run_state import RunState
from cerebro_ops.core.spec import StudySpec


def hop_orders(spec: StudySpec, run_id: str) -> dict:
    """{(epoch, model_id): [partition, ...]} in hop order, from the run's hop records."""
    from cerebro_ops import study

    out: dict = {}
    for r in sorted(study.hop_records(spec, run_id), key=lambda r: (r["epoch"], r["model_id"], r["hop"])):
        if r["kind"] == "train" and r.get("status") == "ok":
            out.setdefault((r["epoch"], r["model_id"]), []).append(r["partition"])
    return out


def history_diff(a: RunState, b: RunState, tol: float = 1e-6) -> list[str]:
    """Differences between two runs' per-model, per-epoch metrics."""
    diffs = []
    for m in sorted(set(a.models) | set(b.models)):
        ha = a.models[m].history if m in a.models else []
        hb = b.models[m].history if m in b.models else []
        if len(ha) != len(hb):
            diffs.append(f"{m}: {len(ha)} vs {len(hb)} epochs")
            continue
        for ea, eb in zip(ha, hb):
            for k in sorted(set(ea.metrics) | set(eb.metrics)):
                va, vb = ea.value(k), eb.value(k)
                if va is None or vb is None or abs(va - vb) > tol:
                    diffs.append(f"{m} epoch {ea.epoch} {k}: {va} vs {vb}")
    return diffs


def replay(spec: StudySpec, run_id: str, launcher=None, spark=None) -> tuple[str, list[str]]:
    """Re-run `run_id` under a new run id (beside it, in the same store); returns (new run id, differences in
    configs, metrics and hop order -- empty when the replay reproduces the run)."""
    from cerebro_ops import study

    recorded = study.load_run(spec, run_id)
    prepared_with = study.run_spec(spec, recorded)  # the run's snapshot, kept where `spec` found the run
    recorded_spec = dataclasses.replace(prepared_with, name=spec.name,
                                        runtime=dataclasses.replace(prepared_with.runtime, store=spec.runtime.store))
    overrides = {**recorded.overrides, "seed": recorded.seed}
    new_id = study.new_run_id().replace("cli-", "replay-", 1)
    study.run(recorded_spec, run_id=new_id, overrides=overrides, launcher=launcher, spark=spark,
              register_model=False, replay_of=recorded)
    state = study.load_run(spec, new_id)
    diffs = history_diff(recorded, state)
    if state.configs != recorded.configs:
        diffs.append("configs differ")
    old, new = hop_orders(spec, run_id), hop_orders(spec, new_id)
    diffs += [f"hop order of {m} in epoch {e}: {old.get((e, m))} vs {new.get((e, m))}"
              for e, m in sorted(set(old) | set(new)) if old.get((e, m)) != new.get((e, m))]
    return new_id, diffs
