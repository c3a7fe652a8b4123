"""Baselines, run in spawned processes with 1 TF thread each (as a MOP worker has).

Two trainers: plain Keras `fit` (`train_config`), and the project's own compiled loop driven through
HopTrainer exactly as a MOP worker drives it (`own_config`). The honest references for MOP are the latter:
the same loop one config after another in one process (sequential), and whole configs on W processes at
once (task parallel, the ceiling). The driver (the benchmark process) never imports TensorFlow: a `Pool` of
W spawned processes takes commands over pipes.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any

_THREAD_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
               "CUDA_VISIBLE_DEVICES": ""}


# ------------------------------------------------------------------------------------------ child side

class _Ctx:
    """Per-process state: TF configured once, data splits cached by (url, split, partition)."""

    def __init__(self):
        os.environ.update(_THREAD_ENV)
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.experimental.enable_op_determinism()  # as the MOP workers (deterministic: true)
        self.data: dict = {}
        self.dp_model = None
        self.trainers: dict = {}

    def trainer(self, meta: dict):
        """One HopTrainer per data layout, kept warm across commands (as a MOP worker keeps its own)."""
        from cerebro_ops.keras.trainer import HopTrainer

        key = repr((meta["input_shape"], meta["task"], meta.get("num_classes"), meta.get("feature_spans")))
        if key not in self.trainers:
            self.trainers[key] = HopTrainer(_info(meta), deterministic=True)
        return self.trainers[key]

    def split(self, data_url: str, meta: dict, split: str, partition: int | None = None):
        from cerebro_ops.data.reader import load_partition, load_split

        key = (data_url, split, partition)
        if key not in self.data:
            # another seed's split: drop the last one's arrays rather than hold every seed's copy
            self.data = {k: v for k, v in self.data.items() if k[0] == data_url}
            shape = tuple(meta["input_shape"])
            self.data[key] = (load_split(data_url, split, shape) if partition is None
                              else load_partition(data_url, split, partition, shape))
        return self.data[key]


def _info(meta: dict):
    from cerebro_ops.keras.trainer import data_info
    return data_info(meta)


def _build(builder: str, params: dict, meta: dict, seed: int):
    import keras
    from cerebro_ops.keras.trainer import import_builder

    keras.utils.set_random_seed(int(seed))
    return import_builder(builder)(dict(params), _info(meta))


def train_config(builder: str, params: dict, meta: dict, data: tuple, epochs: int, seed: int) -> dict:
    """The shared helper: build (seeded), fit `epochs` epochs with a per-epoch validation pass; timings."""
    import keras

    x, y, xv, yv = data
    t0 = time.time()
    model = _build(builder, params, meta, seed)
    keras.utils.set_random_seed(int(seed))  # shuffle order
    hist = model.fit(x, y, validation_data=(xv, yv), validation_batch_size=1024,
                     batch_size=int(params.get("batch_size", 64)), epochs=int(epochs), shuffle=True, verbose=0)
    t1 = time.time()
    return {"start": t0, "end": t1, "wall_s": t1 - t0, "val_loss": [float(v) for v in hist.history["val_loss"]],
            "loss": [float(v) for v in hist.history["loss"]], "pid": os.getpid()}


def own_config(trainer, builder: str, config: tuple[str, dict], data: tuple, epochs: int, seed: int) -> dict:
    """One config through the project's HopTrainer as a MOP worker drives it (checkpoint in, one pass over
    the rows in a seeded order, checkpoint out, evaluation on the validation split), over the whole train
    split `epochs` times."""
    mid, params = config
    x, y, xv, yv = data
    t0 = time.time()
    ckpt = trainer.initial_checkpoint(builder, params, _seed(seed, mid, "init"))
    val, train_s = [], 0.0
    for e in range(int(epochs)):
        ckpt, st = trainer.train(builder, params, ckpt, x, y, _seed(seed, mid, e), val=(xv, yv))
        val.append(float(st["metrics"]["loss"]))
        train_s += st["train_s"]
    t1 = time.time()
    return {"start": t0, "end": t1, "wall_s": t1 - t0, "train_s": train_s, "val_loss": val, "pid": os.getpid()}


def _seed(*parts) -> int:
    import zlib
    return zlib.crc32("/".join(map(str, parts)).encode()) & 0x7FFFFFFF


def _fit_setup(ctx: _Ctx, builder: str, params: dict, meta: dict, data_url: str, repeats: int = 3) -> dict:
    """Fixed cost of one `fit` call on a warm, cached model (what every MOP hop pays): fit wall − loop time."""
    import keras

    x, y = ctx.split(data_url, meta, "train", 0)
    model = _build(builder, params, meta, 0)
    marks: dict = {}

    class _T(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                marks["b0"] = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                marks["b0_end"] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            marks["e"] = time.perf_counter()

    bs = int(params.get("batch_size", 64))
    model.fit(x, y, batch_size=bs, epochs=1, verbose=0)  # trace once, as a cached MOP model has
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=bs, epochs=1, shuffle=True, verbose=0, callbacks=[_T()])
        t1 = time.perf_counter()
        out.append({"fit_s": t1 - t0, "setup_s": (marks["b0"] - t0) + (t1 - marks["e"])})
    return {"fit_s": min(o["fit_s"] for o in out), "setup_s": min(o["setup_s"] for o in out), "rows": len(x)}


def _serve(conn, rank: int) -> None:
    ctx = _Ctx()
    conn.send(("ready", rank))
    while True:
        cmd, kw = conn.recv()
        try:
            if cmd == "stop":
                conn.send(("ok", None))
                return
            conn.send(("ok", _handle(ctx, cmd, kw)))
        except Exception as exc:  # report, keep serving
            import traceback
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"))


def _peak_rss_kb() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _handle(ctx: _Ctx, cmd: str, kw: dict) -> Any:
    if cmd == "load":  # pre-load data so timed phases measure training only
        x, y = ctx.split(kw["data_url"], kw["meta"], "train", kw.get("partition"))
        xv, yv = ctx.split(kw["data_url"], kw["meta"], "val")
        return {"bytes": int(x.nbytes + y.nbytes + xv.nbytes + yv.nbytes), "rows": len(x),
                "train_bytes": int(x.nbytes + y.nbytes), "val_bytes": int(xv.nbytes + yv.nbytes)}
    if cmd == "train":  # a list of configs, one after another
        x, y = ctx.split(kw["data_url"], kw["meta"], "train", kw.get("partition"))
        xv, yv = ctx.split(kw["data_url"], kw["meta"], "val")
        t0 = time.time()
        res = {mid: train_config(kw["builder"], p, kw["meta"], (x, y, xv, yv), kw["epochs"], kw["seed"])
               for mid, p in kw["configs"]}
        return {"start": t0, "end": time.time(), "configs": res, "rss_peak_kb": _peak_rss_kb()}
    if cmd == "own_train":  # the project's compiled loop, configs one after another
        data = (*ctx.split(kw["data_url"], kw["meta"], "train"), *ctx.split(kw["data_url"], kw["meta"], "val"))
        trainer = ctx.trainer(kw["meta"])
        t0 = time.time()
        res = {mid: own_config(trainer, kw["builder"], (mid, p), data, kw["epochs"], kw["seed"])
               for mid, p in kw["configs"]}
        return {"start": t0, "end": time.time(), "configs": res, "rss_peak_kb": _peak_rss_kb()}
    if cmd == "fit_setup":
        return _fit_setup(ctx, kw["builder"], kw["params"], kw["meta"], kw["data_url"])
    if cmd == "dp_init":  # data parallel: a fresh model per config, same init on every worker
        ctx.dp_model = _build(kw["builder"], kw["params"], kw["meta"], kw["seed"])
        return [w for w in ctx.dp_model.get_weights()]
    if cmd == "dp_epoch":  # set the averaged weights, one epoch on this worker's partition
        import keras

        x, y = ctx.split(kw["data_url"], kw["meta"], "train", kw["partition"])
        ctx.dp_model.set_weights(kw["weights"])
        keras.utils.set_random_seed(int(kw["seed"]))
        ctx.dp_model.fit(x, y, batch_size=int(kw["batch_size"]), epochs=1, shuffle=True, verbose=0)
        return {"weights": ctx.dp_model.get_weights(), "n": len(x)}
    if cmd == "dp_eval":
        xv, yv = ctx.split(kw["data_url"], kw["meta"], "val")
        ctx.dp_model.set_weights(kw["weights"])
        return float(ctx.dp_model.evaluate(xv, yv, batch_size=1024, verbose=0, return_dict=True)["loss"])
    raise ValueError(f"unknown command {cmd!r}")


# ------------------------------------------------------------------------------------------ driver side

class Pool:
    """W spawned processes, each with one TF thread; commands go out at once, answers are gathered."""

    def __init__(self, workers: int):
        ctx = mp.get_context("spawn")
        saved = {k: os.environ.get(k) for k in _THREAD_ENV}
        os.environ.update(_THREAD_ENV)
        self.conns, self.procs = [], []
        t0 = time.time()
        try:
            for r in range(workers):
                a, b = ctx.Pipe()
                p = ctx.Process(target=_serve, args=(b, r), daemon=True)
                p.start()
                self.conns.append(a)
                self.procs.append(p)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        for c in self.conns:
            c.recv()
        self.startup_s = time.time() - t0

    def ask(self, rank: int, cmd: str, **kw):
        self.conns[rank].send((cmd, kw))

    def answer(self, rank: int):
        status, val = self.conns[rank].recv()
        if status != "ok":
            raise RuntimeError(f"baseline worker {rank}: {val}")
        return val

    def all(self, cmds: list[tuple[str, dict]]) -> list:
        for r, (cmd, kw) in enumerate(cmds):
            self.ask(r, cmd, **kw)
        return [self.answer(r) for r in range(len(cmds))]

    def close(self):
        for r, c in enumerate(self.conns):
            try:
                c.send(("stop", {}))
                c.recv()
            except Exception:
                pass
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()


def _timed_seeds(pool: Pool, cmd: str, base: dict, items: list, seeds: list[int]) -> list[dict]:
    """`cmd` over every config for each seed, one seed after another on worker 0 (timed alone)."""
    out = []
    for s in seeds:
        pool.ask(0, cmd, **base, configs=items, seed=s)
        out.append(pool.answer(0))
    return out


def keras_sequential(pool: Pool, base: dict, items: list, seeds: list[int]) -> dict:
    """Plain Keras `fit` per config, one config after another in one process (the textbook reference)."""
    seq = _timed_seeds(pool, "train", base, items, seeds)
    t_seq = [r["end"] - r["start"] for r in seq]
    return {"seeds": seeds, "T_seq_per_seed": t_seq, "T_seq": sum(t_seq) / len(t_seq),
            "per_config_wall_s": {m: [r["configs"][m]["wall_s"] for r in seq] for m, _ in items},
            "val_loss": {m: [r["configs"][m]["val_loss"][-1] for r in seq] for m, _ in items},
            "val_loss_curves": {m: [r["configs"][m]["val_loss"] for r in seq] for m, _ in items}}


def own_sequential(pool: Pool, base: dict, items: list, seed: int) -> dict:
    """The project's compiled loop (HopTrainer, as a MOP worker runs it) over the whole train split, one
    config after another in one process: what MOP's W workers must beat."""
    r = _timed_seeds(pool, "own_train", base, items, [seed])[0]
    return {"seed": seed, "T": r["end"] - r["start"], "sum_train_s": sum(c["train_s"] for c in r["configs"].values()),
            "per_config_wall_s": {m: c["wall_s"] for m, c in r["configs"].items()},
            "val_loss": {m: c["val_loss"][-1] for m, c in r["configs"].items()},
            "val_loss_curves": {m: c["val_loss"] for m, c in r["configs"].items()}, "rss_peak_kb": r["rss_peak_kb"]}


def own_seed_losses(pool: Pool, runs: list[tuple[int, dict]], items: list, workers: int) -> dict[int, dict]:
    """{seed: {config: final val loss}} of the own loop trained with each seed on that seed's split (base);
    the seeds run W at a time (only the losses matter here, not the time)."""
    out: dict[int, dict] = {}
    for i in range(0, len(runs), workers):
        batch = runs[i:i + workers]
        ans = pool.all([("own_train", {**base, "configs": items, "seed": s}) for s, base in batch])
        for (s, _), a in zip(batch, ans):
            out[s] = {m: c["val_loss"][-1] for m, c in a["configs"].items()}
    return out


def task_parallel(pool: Pool, base: dict, items: list, seed: int, cmd: str = "own_train") -> dict:
    """Whole configs on W processes (a full data copy each), handed out dynamically in spec order: the
    ceiling of what W workers can do with no data movement at all."""
    queue, busy = list(items), {}
    first_start, last_end, t0 = None, 0.0, time.time()
    val, rss = {}, {}
    while queue or busy:
        for r in range(len(pool.conns)):
            if r not in busy and queue:
                m, p = queue.pop(0)
                pool.ask(r, cmd, **base, configs=[(m, p)], seed=seed)
                busy[r] = m
        r = _wait_any(pool, list(busy))
        ans = pool.answer(r)
        m = busy.pop(r)
        first_start = ans["start"] if first_start is None else min(first_start, ans["start"])
        last_end = max(last_end, ans["end"])
        val[m] = ans["configs"][m]["val_loss"][-1]
        rss[r] = ans["rss_peak_kb"]
    return {"makespan_s": last_end - min(first_start, t0), "val_loss": val,
            "rss_peak_kb_per_process": [rss[r] for r in sorted(rss)]}


def data_parallel(pool: Pool, base: dict, items: list, seed: int) -> dict:
    """Model averaging: one config at a time, W workers on their partitions, weights averaged per epoch."""
    workers = len(pool.conns)
    data = {"data_url": base["data_url"], "meta": base["meta"]}
    pool.all([("load", {**data, "partition": r}) for r in range(workers)])
    t0, val = time.time(), {}
    for m, p in items:
        weights = pool.all([("dp_init", {"builder": base["builder"], "params": p, "meta": base["meta"],
                                         "seed": seed})] * workers)[0]
        for e in range(base["epochs"]):
            ans = pool.all([("dp_epoch", {**data, "partition": r, "weights": weights, "seed": seed * 1000 + e,
                                          "batch_size": p.get("batch_size", 64)}) for r in range(workers)])
            n = sum(a["n"] for a in ans)
            weights = [sum(a["weights"][i] * (a["n"] / n) for a in ans) for i in range(len(ans[0]["weights"]))]
        pool.ask(0, "dp_eval", **data, weights=weights)
        val[m] = pool.answer(0)
    return {"makespan_s": time.time() - t0, "val_loss": val}


def run_baselines(pool: Pool, mop: dict, epochs: int, seed_runs: list[tuple[int, dict]],
                  data_parallel_too: bool = True) -> dict:
    """Every baseline on MOP's prepared data (`mop`, the run with the first seed); `seed_runs` = [(seed, its
    run's data)] for the accuracy spreads. Timed phases run alone, one after another."""
    base = {"builder": mop["builder"], "meta": mop["meta"], "data_url": mop["data_url"], "epochs": epochs}
    items = sorted(mop["configs"].items())
    seed0, workers = seed_runs[0][0], len(pool.conns)
    full = pool.all([("load", {"data_url": base["data_url"], "meta": base["meta"]})] * workers)
    out: dict = {"pool_startup_s": pool.startup_s, "data_bytes_full_copy": full[0]["bytes"],
                 "data_bytes_train": full[0]["train_bytes"], "data_bytes_val": full[0]["val_bytes"]}
    out["own_sequential"] = own_sequential(pool, base, items, seed0)
    out["own_task_parallel"] = task_parallel(pool, base, items, seed0)
    out["own_task_parallel"]["data_bytes"] = workers * out["data_bytes_full_copy"]
    # a MOP worker keeps its train partition and the whole validation split
    out["own_task_parallel"]["data_bytes_mop"] = out["data_bytes_train"] + workers * out["data_bytes_val"]
    out["sequential"] = keras_sequential(pool, base, items, [seed0])
    if data_parallel_too:
        out["data_parallel"] = data_parallel(pool, base, items, seed0)
    others = [(s, {**base, "data_url": r["data_url"], "meta": r["meta"]}) for s, r in seed_runs[1:]]
    out["own_seed_val_loss"] = {seed0: out["own_sequential"]["val_loss"],
                                **own_seed_losses(pool, others, items, workers)}
    pool.ask(0, "fit_setup", builder=base["builder"], params=items[0][1], meta=base["meta"],
             data_url=base["data_url"])
    out["fit_setup"] = pool.answer(0)
    return out


def _wait_any(pool: Pool, ranks: list[int]) -> int:
    from multiprocessing.connection import wait

    ready = wait([pool.conns[r] for r in ranks])
    return next(r for r in ranks if pool.conns[r] in ready)
