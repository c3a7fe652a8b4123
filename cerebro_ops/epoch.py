"""One MOP epoch, driver side: scheduler + hop server + hop records in the store.

The workers are launched by a callable (a Spark job in production, threads in fast tests), so this module
imports no Spark. Every finished unit is recorded as its own small JSON file in the store before the
scheduler moves on; a re-run of the epoch reads those records and does not redo them.
"""
from __future__ import annotations

import logging
import os
import signal
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

# Fault-injection hook, for tests only: with CEREBRO_FAULT_KILL_AFTER_HOPS=N the driver SIGKILLs its own
# process right after the N-th hop record it writes (counted over the process), i.e. mid-epoch, with no
# chance to clean up -- exactly what a crash or an OOM kill of the driver looks like. Then
# `cerebro-ops run SPEC --run-id R --resume` must finish the run without redoing recorded hops.
FAULT_KILL_AFTER_HOPS = "CEREBRO_FAULT_KILL_AFTER_HOPS"
_hops_recorded = 0


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
              meta: dict, deterministic: bool = True, max_retries: int = 2, host: str | None = None,
              on_record: Callable[[dict], None] | None = None, _repairs: int = 2,
              _repair: bool = False) -> EpochResult:
    """Train every live model (keys of start_ckpt) one sub-epoch on each partition, then evaluate it.

    A checkpoint that fails its checksum when a worker loads it is not fatal: the train record that wrote
    it is invalidated (deleted, with the model's evaluations of that epoch), the model is paused for the
    rest of this pass, and once the workers are done the invalidated hop is redone from the previous good
    checkpoint -- in the previous epoch if the bad file was this epoch's starting checkpoint -- before the
    model finishes this epoch (at most `_repairs` times, then the model fails).
    """
    t_start = time.time()
    live = sorted(start_ckpt)
    # Visit orders depend on the epoch's whole model set: a repair pass over one model must use the same.
    if _repair:
        everyone = store.read_json(f"hops/models-e{epoch}.json", default=[]) or live
    else:
        everyone = live
        store.write_json(f"hops/models-e{epoch}.json", live)
    previous = [r for r in load_records(store, epoch) if r.get("status") == "ok" and r["model_id"] in start_ckpt]
    done = [Unit(r["model_id"], r["partition"], r["kind"], r["hop"]) for r in previous]
    sched = MopScheduler(everyone, workers, epoch, seed, done=done, max_retries=max_retries)
    for other in set(everyone) - set(live):
        sched.drop_model(other)
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

    rollback: dict[str, int] = {}  # model -> epoch of the invalidated train record

    def on_done(worker: int, u: Unit, rec: dict) -> None:
        global _hops_recorded
        rec = {**rec, "epoch": epoch, "model_id": u.model_id, "partition": u.partition, "kind": u.kind,
               "hop": u.hop, "status": "ok"}
        store.write_json(record_name(epoch, u), rec)
        _hops_recorded += 1
        if os.environ.get(FAULT_KILL_AFTER_HOPS) and _hops_recorded >= int(os.environ[FAULT_KILL_AFTER_HOPS]):
            log.warning("fault injection: SIGKILL after %d recorded hops", _hops_recorded)
            os.kill(os.getpid(), signal.SIGKILL)
        if u.kind == TRAIN:
            pointer[u.model_id] = {"ckpt": rec["ckpt"], "sha256": rec["sha256"]}
        records.append(rec)
        _log_hop(rec)
        if on_record:
            on_record(rec)

    def on_failed(worker: int, u: Unit, reason: str, config_failed: bool, ckpt_corrupt: bool = False) -> None:
        rec = {"epoch": epoch, "model_id": u.model_id, "partition": u.partition, "kind": u.kind, "hop": u.hop,
               "worker": worker, "start": time.time(), "end": time.time(), "reason": reason[:2000]}
        bad_epoch = _invalidate(store, epoch, u.model_id, pointer[u.model_id]) if ckpt_corrupt and _repairs else None
        if bad_epoch is not None:
            sched.fail_model(worker, u, u.model_id)  # paused: finished after the repair below
            rollback[u.model_id] = bad_epoch
            rec["status"] = "rollback"
            records[:] = [r for r in records if not (r["model_id"] == u.model_id and r.get("epoch") == bad_epoch)]
        elif config_failed:
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
        # Workers on other hosts reach the driver at CEREBRO_DRIVER_HOST; locally everything stays on loopback.
        advertised = host or os.environ.get("CEREBRO_DRIVER_HOST", "127.0.0.1")
        bind = "127.0.0.1" if advertised in ("127.0.0.1", "localhost") else "0.0.0.0"
        with HopServer(sched, payload, on_done, on_failed, host=bind) as server:
            task = EpochTask(advertised, server.port, store.uri, data_url, meta, deterministic)
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
    again = dict(builder=builder, seed=seed, workers=workers, launch=launch, data_url=data_url, meta=meta,
                 deterministic=deterministic, max_retries=max_retries, host=host, on_record=on_record,
                 _repairs=_repairs - 1, _repair=True)
    for m, bad_epoch in sorted(rollback.items()):
        start = start_ckpt[m]
        if bad_epoch < epoch:  # this epoch's starting checkpoint was bad: redo the previous epoch's last hop
            start = run_epoch(store, bad_epoch, configs, {m: _last_ckpt(store, bad_epoch - 1, m)},
                              **again).models[m].ckpt
        log.warning("epoch %d: %s rolled back to its previous good checkpoint; finishing it", epoch, m)
        redo = run_epoch(store, epoch, configs, {m: start}, **again)
        results[m] = redo.models[m]
        records[:] = [r for r in records if r["model_id"] != m or r["status"] == "rollback"] + redo.records
    return EpochResult(epoch, results, records, time.time() - t_start)


def _invalidate(store: Store, epoch: int, model_id: str, ptr: dict | None) -> int | None:
    """Delete the train record that wrote the checkpoint `ptr` (and the model's evaluations of that
    epoch, made from it), so the hop is redone. Returns that record's epoch, or None if not found."""
    if not ptr:
        return None
    for e in (epoch, epoch - 1):
        recs = [r for r in load_records(store, e) if r["model_id"] == model_id] if e >= 1 else []
        bad = [r for r in recs if r["kind"] == TRAIN and r.get("ckpt") == ptr["ckpt"]]
        if bad:
            for r in [bad[0]] + [r for r in recs if r["kind"] == EVAL]:
                store.delete(record_name(e, Unit(model_id, r["partition"], r["kind"], r["hop"])))
            log.warning("checkpoint %s is corrupt: invalidated hop %d of epoch %d of %s", ptr["ckpt"],
                        bad[0]["hop"], e, model_id)
            return e
    return None


def _last_ckpt(store: Store, epoch: int, model_id: str) -> dict | None:
    """The checkpoint a model ended `epoch` with (None before epoch 1)."""
    train = [r for r in load_records(store, epoch) if r["model_id"] == model_id and r["kind"] == TRAIN
             and r.get("status") == "ok"] if epoch >= 1 else []
    if not train:
        return None
    last = max(train, key=lambda r: r["hop"])
    return {"ckpt": last["ckpt"], "sha256": last["sha256"]}


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


def run_in_threads(work: Callable[[EpochTask, int], object], task: EpochTask, workers: int) -> None:
    """Run work(task, w) for w in 0..W-1 as threads of this process and wait for all of them."""
    threads = [threading.Thread(target=work, args=(task, w)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def thread_launcher(workers: int) -> Callable[[EpochTask], None]:
    """Run the W workers as threads of this process (tests, and Spark-less debugging)."""
    from .worker import run_worker

    def launch(task: EpochTask) -> None:
        run_in_threads(run_worker, task, workers)
    return launch
