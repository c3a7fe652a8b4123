"""One MOP study, run in this process (`run_mop`) or as the user runs it, `cerebro-ops run` (`run_cli`).

Both return the same dict: the hop records, the final and per-epoch validation losses, the configs and where
the prepared data lives (for the baselines to train on the very same rows)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .common import LOGS, ROOT


class _Progress:
    def __init__(self):
        self.epoch_start: dict[int, float] = {}

    def start_epoch(self, epoch: int) -> None:
        self.epoch_start[epoch] = time.time()

    def record(self, rec: dict) -> None:
        pass


def _outcome(spec, run_id: str) -> dict:
    from cerebro_ops import study

    state = study.load_state(spec, run_id)
    val = {m: (h[-1].get("val_loss") if h else None) for m, h in state["history"].items()}
    curves = {m: [x.get("val_loss") for x in h] for m, h in state["history"].items()}
    return {"run_id": run_id, "records": study.hop_records(spec, run_id), "val_loss": val,
            "val_loss_curves": curves, "status": state["status"], "configs": state["configs"],
            "meta": state["meta"], "data_url": study.repository(spec, run_id).store.url("data"),
            "builder": spec.model_builder}


def run_mop(spec_path: Path) -> dict:
    """study.run in this process, without registering; study wall and the epoch-1 launch time."""
    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec

    spec = load_spec(str(spec_path))
    prog = _Progress()
    t0 = time.time()
    res = study.run(spec, progress=prog, register_model=False)
    t1 = time.time()
    out = _outcome(spec, res["run_id"])
    out.update(run_start=t0, run_end=t1, study_wall_s=t1 - t0, prepare_s=prog.epoch_start.get(1, t1) - t0,
               epoch_start=prog.epoch_start)
    return out


def run_cli(spec_path: Path, timeout: int = 3600) -> dict:
    """`python -m cerebro_ops.cli run SPEC` in a fresh process: the wall from its start to its exit, after
    the champion is registered (end to end as a user sees it); then the run's records from the store."""
    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec

    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"cli_{spec_path.stem}.log"
    t0 = time.time()
    with open(log, "w") as fh:
        p = subprocess.run([sys.executable, "-m", "cerebro_ops.cli", "run", str(spec_path)], cwd=ROOT,
                           stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, env=dict(os.environ))
    t1 = time.time()
    text = log.read_text(errors="replace")
    if p.returncode != 0:
        raise RuntimeError(f"cerebro-ops run exited {p.returncode}: {text[-2000:]}")
    spec = load_spec(str(spec_path))
    out = _outcome(spec, study.latest_run(spec))
    out.update(run_start=t0, run_end=t1, study_wall_s=t1 - t0, prepare_s=None, epoch_start={},
               registered="champion:" in text, log=str(log))
    return out
