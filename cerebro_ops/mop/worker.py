"""Worker side of an epoch: runs inside a Spark Python worker, pinned to one partition.

The partition and the validation rows are read once and kept in memory when they fit the memory budget
(runtime.worker_memory_mb), else streamed from a copy on local disk every hop (partition_data.py); with
partitioned validation a worker holds only its own validation partition. TensorFlow, the compiled
models and the data tensors stay warm in module globals across hops and across epochs (Spark reuses Python
workers). A hop = load the model's checkpoint from the store, train one sub-epoch on the local partition,
save the new checkpoint atomically, report; a model's last hop of the epoch also evaluates it on the
validation split, before the model leaves the worker.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field

import pandas as pd

# Per thread: a Spark Python worker runs one task at a time (one thread), so this is the per-process
# warm cache; with the thread launcher it keeps two runs in one process from sharing a cached Keras model.
_LOCAL = threading.local()

# Fault-injection hook, for tests only: "P:N" makes the worker serving partition P exit its process
# (os._exit, as an OOM kill would) after running -- but before reporting -- its N-th unit (0-based) of a
# task. A marker file in the run store makes it happen once per run, so Spark's task retry then succeeds.
FAULT_WORKER_EXIT = "CEREBRO_FAULT_WORKER_EXIT"


class CheckpointCorrupt(Exception):
    """The model's input checkpoint is missing or fails its checksum: the driver rolls the model back."""


@dataclass(frozen=True)
class EpochTask:
    host: str
    port: int
    store_uri: str      # the run-scoped store
    data_url: str       # where the W partitions live
    meta: dict
    deterministic: bool = True
    # The epoch's hop secret: random per pass, made by the driver; the worker proves it knows it when it
    # connects (hop_server.HopClient). Not in repr, so it stays out of logs and Spark UI task descriptions.
    secret: bytes = field(default=b"", repr=False)
    heartbeat_s: float = 5.0  # how often the worker tells the driver it is alive, busy or not
    memory_mb: int | None = None  # the data's memory budget (None: the worker's default, memory_budget.py)
    local_dir: str = ""           # where streamed partitions are copied on the worker's host


def _trainer(task: EpochTask):
    from cerebro_ops.core.output import quiet_libraries

    quiet_libraries()  # before TensorFlow's first import in this worker: its C++ log level is read then
    from cerebro_ops.keras.trainer import HopTrainer, data_info

    spans = task.meta.get("feature_spans") or {}
    key = (tuple(task.meta["input_shape"]), task.meta["task"], task.meta["num_classes"], task.deterministic,
           tuple((c, tuple(se)) for c, se in spans.items()))
    trainers = _LOCAL.__dict__.setdefault("trainers", {})
    if key not in trainers:
        trainers[key] = HopTrainer(data_info(task.meta), deterministic=task.deterministic)
    return trainers[key]


def run_worker(task: EpochTask, partition: int) -> dict:
    """Serve units for one partition until the driver says this worker is done."""
    from cerebro_ops.core.errors import ConfigFailed
    from cerebro_ops.mop.hop_server import HopClient
    from cerebro_ops.mop.partition_data import WorkerData
    from cerebro_ops.store import Store

    trainer = _trainer(task)
    store = Store(task.store_uri)
    shape = tuple(task.meta["input_shape"])
    rows = WorkerData(task.data_url, partition, task.meta, task.memory_mb, task.local_dir)

    def split(name: str):
        # the whole validation split: only for a driver that does not chain evaluations over the partitions
        return _validation_split(task.data_url, shape) if name == "val" else rows

    client = HopClient(task.host, task.port, partition, secret=task.secret, heartbeat_s=task.heartbeat_s)
    hops = 0
    busy = 0.0
    try:
        while True:
            msg = client.next()
            if msg.get("done"):
                break
            unit = msg["unit"]
            start = time.time()
            try:
                record = _run_unit(trainer, store, msg, split)
            except CheckpointCorrupt as exc:
                client.failed(unit, str(exc), config_failed=False, ckpt_corrupt=True)
                continue
            except ConfigFailed as exc:
                client.failed(unit, str(exc), config_failed=True)
                continue
            except Exception as exc:  # transient or unknown: the driver retries the unit
                client.failed(unit, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}", False)
                continue
            end = time.time()
            busy += end - start
            record.update(start=start, end=end, worker=partition, pid=os.getpid(), rss_peak_kb=_peak_rss_kb())
            _maybe_exit(store, partition, hops)
            client.result(unit, record)
            hops += 1
    finally:
        client.close()
    return {"partition": partition, "hops": hops, "busy_s": busy, "pid": os.getpid()}


def _peak_rss_kb() -> int:
    """This worker process's peak resident memory so far (kB), for the memory comparison of the benchmarks."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _run_unit(trainer, store, msg: dict, split) -> dict:
    from cerebro_ops.core.errors import ConfigFailed

    unit = msg["unit"]
    builder, params = msg["builder"], msg["params"]
    if msg.get("config_of"):  # what a worker that built this config learned: no build here to learn it again
        trainer.know_config(builder, params, *msg["config_of"])
    t0 = time.perf_counter()
    if msg.get("ckpt_in"):
        from cerebro_ops.core.errors import StoreError
        try:
            ckpt = store.read_blob(msg["ckpt_in"], msg.get("sha_in"))
        except (StoreError, FileNotFoundError) as exc:
            raise CheckpointCorrupt(f"checkpoint {msg['ckpt_in']} is unusable: {exc}") from exc
    else:
        try:
            ckpt = trainer.initial_checkpoint(builder, params, msg["init_seed"])
        except ConfigFailed:
            raise
        except Exception as exc:
            raise ConfigFailed(f"the model builder failed: {type(exc).__name__}: {exc}") from exc
    read_s = time.perf_counter() - t0
    data = split("train")
    if unit.get("kind", "train") != "train":
        return {**_evaluate(trainer, msg, ckpt, data), "read_s": read_s}
    train = data.rows("train")
    val = split("val") if msg.get("evaluate") and not msg.get("val_chain") else None
    new_ckpt, stats = trainer.train(builder, params, ckpt, train.x, train.y, msg["seed"], val=val)
    io = {"rows_from": train.rows_from, "bytes_read": train.bytes_read, "data_mode": data.plan.mode}
    if msg.get("val_chain"):
        evaluated = _evaluate(trainer, msg, None, data)  # the model as it just trained
        io.update({k: v for k, v in evaluated.items() if k not in ("n", "rows_from", "bytes_read")},
                  bytes_read=train.bytes_read + evaluated["bytes_read"])
    t1 = time.perf_counter()
    sha = store.write_blob(msg["ckpt_out"], new_ckpt)
    write_s = time.perf_counter() - t1
    return {**stats, **io, "ckpt": msg["ckpt_out"], "sha256": sha, "read_s": read_s, "write_s": write_s,
            "config_of": trainer.config_of(builder, params)}


def _evaluate(trainer, msg: dict, ckpt: bytes | None, data) -> dict:
    """One link of a model's evaluation chain: this worker's validation rows added to the sums and counts
    of the partitions before; the chain's last link reports the metrics over all of them."""
    val = data.rows("val")
    traces = trainer.traces()
    t0 = time.perf_counter()
    state, metrics = trainer.evaluate_part(msg["builder"], msg["params"], ckpt, data.eval_chunks(val),
                                           msg.get("val_state"))
    out = {"n": len(val.x), "val_state": state, "eval_s": time.perf_counter() - t0, "rows_from": val.rows_from,
           "bytes_read": val.bytes_read, "val_rows_from": val.rows_from, "data_mode": data.plan.mode,
           "eval_traced": any(e > traces.get(arch, (0, 0))[1] for arch, (_, e) in trainer.traces().items())}
    if msg.get("val_final"):
        out["metrics"] = metrics
    return out


def _validation_split(data_url: str, shape: tuple):
    """All validation rows, read once per worker process (thread) and kept across hops and epochs."""
    from cerebro_ops.data.reader import load_split

    cache = _LOCAL.__dict__.setdefault("val", {})
    key = (data_url.rstrip("/"), shape)
    if key not in cache:
        cache.clear()  # another run's data: keep one split
        cache[key] = load_split(data_url, "val", shape)
    return cache[key]


def _maybe_exit(store, partition: int, nth: int) -> None:
    spec = os.environ.get(FAULT_WORKER_EXIT)
    if not spec or spec != f"{partition}:{nth}":
        return
    marker = f"faults/worker-exit-{partition}-{nth}"
    if store.exists(marker):
        return
    store.write_bytes(marker, b"")
    os._exit(17)


def spark_entry(task: EpochTask, batches, env: dict | None = None):
    """mapInPandas body: each input row is one partition index; this task serves it.

    `env`: the driver's output level (CEREBRO_VERBOSE, TF_CPP_MIN_LOG_LEVEL), applied before TensorFlow is
    first imported here; it reaches workers of any session, Spark Connect included."""
    os.environ.update(env or {})
    for batch in batches:
        rows = []
        for p in batch["partition"].tolist():
            rows.append(run_worker(task, int(p)))
        yield pd.DataFrame(rows, columns=["partition", "hops", "busy_s", "pid"]).astype(
            {"partition": "int64", "hops": "int64", "busy_s": "float64", "pid": "int64"})
