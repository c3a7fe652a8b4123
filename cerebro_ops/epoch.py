"""One MOP epoch, driver side: scheduler + hop server + hop records in the store.

The workers are launched by a callable (a Spark job in production, threads in fast tests), so this module
imports no Spark. Every finished unit is recorded as its own small JSON file in the store before the
scheduler moves on; a re-run of the epoch reads those records and does not redo them.
"""
from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

from .hop_server import HopServer
from .scheduler import EVAL, TRAIN, MopScheduler, Unit
from .store import Store
from .worker import EpochTask

log = logging.getLogger("cerebro_ops.epoch")


def derive_seed(*parts) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode()) & 0x7FFFFFFF


def record_name(epoch: int, u: Unit) -> str:
    return f"hops/e{epoch}/{u.model_id}-{u.kind}-p{u.partition}.json"


def load_records(store: Store, epoch: int) -> list[dict]:
    return [store.read_json(f"hops/e{epoch}/{n}") for n in store.listdir(f"hops/e{epoch}") if n.endswith(".json")]


@dataclass
class ModelResult:
    model_id: str
    status: str = "RUNNING"     # RUNNING (still live) | FAILED
    reason: str = ""
    train_loss: float | None = None
    val: dict = field(default_factory=dict)   # metric name (without val_) -> value, weighted by examples
    ckpt: dict | None = None                  # {"ckpt": rel path, "sha256": ...} at the end of the epoch


@dataclass
class EpochResult:
    epoch: int
    models: dict[str, ModelResult]
    records: list[dict]
    wall_s: float


def run_epoch(store: Store, epoch: int, configs: dict[str, dict], start_ckpt: dict[str, dict | None],
              builder: str, seed: int, workers: int, launch: Callable[[EpochTask], None], data_url: str,
              meta: dict, deterministic: bool = True, max_retries: int = 2, host: str = "127.0.0.1",
              on_record: Callable[[dict], None] | None = None) -> EpochResult:
    """Train every live model (keys of start_ckpt) one sub-epoch on each partition, then evaluate it."""
    t_start = time.time()
    live = sorted(start_ckpt)
    previous = [r for r in load_records(store, epoch) if r.get("status") == "ok" and r["model_id"] in start_ckpt]
    done = [Unit(r["model_id"], r["partition"], r["kind"], r["hop"]) for r in previous]
    sched = MopScheduler(live, workers, epoch, seed, done=done, max_retries=max_retries)
    results = {m: ModelResult(m, ckpt=start_ckpt[m]) for m in live}
    pointer = {m: start_ckpt[m] for m in live}
    for r in sorted(previous, key=lambda r: r["hop"]):
        if r["kind"] == TRAIN:
            pointer[r["model_id"]] = {"ckpt": r["ckpt"], "sha256": r["sha256"]}
    records = list(previous)
    if previous:
        log.info("epoch %d: resuming, %d units already done", epoch, len(previous))

    def payload(u: Unit) -> dict:
        ptr = pointer[u.model_id]
        msg = {"builder": builder, "params": configs[u.model_id],
               "ckpt_in": ptr["ckpt"] if ptr else None, "sha_in": ptr["sha256"] if ptr else None,
               "init_seed": derive_seed(seed, u.model_id, "init")}
        if u.kind == TRAIN:
            msg["seed"] = derive_seed(seed, u.model_id, epoch, u.partition)
            msg["ckpt_out"] = f"ckpt/{u.model_id}/e{epoch}-h{u.hop}.npz"
        return msg

    def on_done(worker: int, u: Unit, rec: dict) -> None:
        rec = {**rec, "epoch": epoch, "model_id": u.model_id, "partition": u.partition, "kind": u.kind,
               "hop": u.hop, "status": "ok"}
        store.write_json(record_name(epoch, u), rec)
        if u.kind == TRAIN:
            pointer[u.model_id] = {"ckpt": rec["ckpt"], "sha256": rec["sha256"]}
        records.append(rec)
        _log_hop(rec)
        if on_record:
            on_record(rec)

    def on_failed(worker: int, u: Unit, reason: str, config_failed: bool) -> None:
        rec = {"epoch": epoch, "model_id": u.model_id, "partition": u.partition, "kind": u.kind, "hop": u.hop,
               "worker": worker, "start": time.time(), "end": time.time(), "reason": reason[:2000]}
        if config_failed:
            sched.fail_model(worker, u, u.model_id)
            rec["status"] = "failed"
        elif sched.release(worker, u):
            rec["status"] = "retry"
        else:
            rec["status"] = "failed"
            reason = f"gave up after {max_retries} retries: {reason}"
        if rec["status"] == "failed":
            results[u.model_id].status = "FAILED"
            results[u.model_id].reason = reason.splitlines()[0][:500]
        records.append(rec)
        log.warning("hop epoch=%d model=%s partition=%d %s: %s", epoch, u.model_id, u.partition,
                    rec["status"], reason.splitlines()[0][:200])
        if on_record:
            on_record(rec)

    if not sched.finished():
        with HopServer(sched, payload, on_done, on_failed, host=host) as server:
            task = EpochTask(server.host, server.port, store.uri, data_url, meta, deterministic)
            errors: list[BaseException] = []

            def _launch():
                try:
                    launch(task)
                except BaseException as exc:  # surfaced after the server stops waiting
                    errors.append(exc)
                finally:
                    with server.cond:
                        server.cond.notify_all()

            launcher = threading.Thread(target=_launch, name=f"epoch-{epoch}-launcher", daemon=True)
            launcher.start()
            with server.cond:
                server.cond.wait_for(lambda: server.error is not None or sched.finished()
                                     or not launcher.is_alive())
            launcher.join()
            if server.error is not None:
                raise server.error
            if not sched.finished():
                raise RuntimeError(f"epoch {epoch}: the workers stopped before the epoch finished"
                                   + (f": {errors[0]}" if errors else ""))

    _summarise(results, records, pointer, sched)
    return EpochResult(epoch, results, records, time.time() - t_start)


def _summarise(results: dict[str, ModelResult], records: list[dict], pointer: dict, sched: MopScheduler) -> None:
    """Per model: train loss and validation metrics, each averaged by example count."""
    for m, res in results.items():
        if m in sched.failed_models():
            res.status = "FAILED"
            res.reason = res.reason or "failed"
            continue
        ok = [r for r in records if r["model_id"] == m and r.get("status") == "ok"]
        train = [r for r in ok if r["kind"] == TRAIN and r["n"]]  # an empty partition reports no loss
        evals = [r for r in ok if r["kind"] == EVAL and r["n"]]
        n = sum(r["n"] for r in train)
        res.train_loss = sum(r["loss"] * r["n"] for r in train) / n if n else None
        n_val = sum(r["n"] for r in evals)
        keys = sorted({k for r in evals for k in r["metrics"] if k != "n"})
        res.val = {k: sum(r["metrics"][k] * r["n"] for r in evals) / n_val for k in keys} if n_val else {}
        res.ckpt = pointer[m]


def _log_hop(rec: dict) -> None:
    if rec["kind"] == TRAIN:
        log.info("hop epoch=%d model=%s partition=%d worker=%s %.2fs (train %.2fs) loss=%.4f", rec["epoch"],
                 rec["model_id"], rec["partition"], rec.get("worker"), rec["end"] - rec["start"],
                 rec.get("train_s", 0.0), rec.get("loss", float("nan")))
    else:
        log.info("eval epoch=%d model=%s partition=%d worker=%s %.2fs %s", rec["epoch"], rec["model_id"],
                 rec["partition"], rec.get("worker"), rec["end"] - rec["start"],
                 " ".join(f"{k}={v:.4f}" for k, v in sorted(rec["metrics"].items()) if k != "n"))


def thread_launcher(workers: int) -> Callable[[EpochTask], None]:
    """Run the W workers as threads of this process (tests, and Spark-less debugging)."""
    from .worker import run_worker

    def launch(task: EpochTask) -> None:
        threads = [threading.Thread(target=run_worker, args=(task, w)) for w in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return launch
