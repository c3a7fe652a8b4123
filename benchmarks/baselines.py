"""Plain-Keras baselines, run in spawned processes with 1 TF thread each.

One helper (`train_config`) trains one config on in-memory arrays; the sequential reference, the parallel
ceiling, task parallelism and data-parallel model averaging all use it (or its pieces). The driver (the
benchmark process) never imports TensorFlow: a `Pool` of W spawned processes takes commands over pipes.
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

    def split(self, data_url: str, meta: dict, split: str, partition: int | None = None):
        from cerebro_ops.data.reader import load_partition, load_split

        key = (data_url, split, partition)
        if key not in self.data:
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


def train_config(builder: str, params: dict, meta: dict, x, y, xv, yv, epochs: int, seed: int) -> dict:
    """The shared helper: build (seeded), fit `epochs` epochs with a per-epoch validation pass; timings."""
    import keras

    t0 = time.time()
    model = _build(builder, params, meta, seed)
    keras.utils.set_random_seed(int(seed))  # shuffle order
    hist = model.fit(x, y, validation_data=(xv, yv), validation_batch_size=1024,
                     batch_size=int(params.get("batch_size", 64)), epochs=int(epochs), shuffle=True, verbose=0)
    t1 = time.time()
    return {"start": t0, "end": t1, "wall_s": t1 - t0, "val_loss": [float(v) for v in hist.history["val_loss"]],
            "loss": [float(v) for v in hist.history["loss"]], "pid": os.getpid()}


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
        res = {mid: train_config(kw["builder"], p, kw["meta"], x, y, xv, yv, kw["epochs"], kw["seed"])
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


def run_baselines(pool: Pool, builder: str, configs: dict[str, dict], meta: dict, data_url: str, epochs: int,
                  seeds: list[int], workers: int, data_parallel: bool = True) -> dict:
    """All baselines on the same prepared data; returns a JSON-able dict."""
    base = {"builder": builder, "meta": meta, "data_url": data_url, "epochs": epochs}
    items = sorted(configs.items())
    out: dict = {"pool_startup_s": pool.startup_s}
    full = pool.all([("load", {"data_url": data_url, "meta": meta})] * workers)
    out["data_bytes_full_copy"] = full[0]["bytes"]
    out["data_bytes_train"], out["data_bytes_val"] = full[0].get("train_bytes"), full[0].get("val_bytes")

    # Sequential reference: one process (worker 0), configs one after another, per seed.
    seq = []
    for s in seeds:
        pool.ask(0, "train", **base, configs=items, seed=s)
        seq.append(pool.answer(0))
    t_seq = [r["end"] - r["start"] for r in seq]
    out["sequential"] = {
        "seeds": seeds, "T_seq_per_seed": t_seq, "T_seq": sum(t_seq) / len(t_seq),
        "per_config_wall_s": {m: [r["configs"][m]["wall_s"] for r in seq] for m, _ in items},
        "val_loss": {m: [r["configs"][m]["val_loss"][-1] for r in seq] for m, _ in items},
        "val_loss_curves": {m: [r["configs"][m]["val_loss"] for r in seq] for m, _ in items},
    }

    # Parallel ceiling: W processes at once, each a static 1/W of the configs (seed of the first run),
    # balanced by the sequential per-config wall (longest first onto the least-loaded process).
    cost = {m: out["sequential"]["per_config_wall_s"][m][0] for m, _ in items}
    shares: list[list] = [[] for _ in range(workers)]
    load = [0.0] * workers
    for m, p in sorted(items, key=lambda it: -cost[it[0]]):
        w = load.index(min(load))
        shares[w].append((m, p))
        load[w] += cost[m]
    res = pool.all([("train", {**base, "configs": sh, "seed": seeds[0]}) for sh in shares])
    t_par = max(r["end"] for r in res) - min(r["start"] for r in res)
    t_seq0 = t_seq[0]
    out["ceiling"] = {"T_parallel": t_par, "T_seq_same_seed": t_seq0, "ceiling": t_seq0 / t_par,
                      "per_process_s": [r["end"] - r["start"] for r in res],
                      "shares": [[m for m, _ in sh] for sh in shares]}

    # Task parallelism: whole configs on a full data copy per process, handed out dynamically in spec order.
    queue = list(items)
    busy: dict[int, tuple] = {}
    t0 = time.time()
    first_start, last_end = None, 0.0
    tp_val, tp_rss = {}, {}
    while queue or busy:
        for r in range(workers):
            if r not in busy and queue:
                m, p = queue.pop(0)
                pool.ask(r, "train", **base, configs=[(m, p)], seed=seeds[0])
                busy[r] = (m, p)
        r = _wait_any(pool, list(busy))
        ans = pool.answer(r)
        m, _ = busy.pop(r)
        first_start = ans["start"] if first_start is None else min(first_start, ans["start"])
        last_end = max(last_end, ans["end"])
        tp_val[m] = ans["configs"][m]["val_loss"][-1]
        tp_rss[r] = ans["rss_peak_kb"]
    out["task_parallel"] = {"makespan_s": last_end - min(first_start, t0), "val_loss": tp_val,
                            "data_bytes": workers * out["data_bytes_full_copy"],
                            # a MOP worker keeps its train partition and the whole validation split
                            "data_bytes_mop": out["data_bytes_train"] + workers * out["data_bytes_val"],
                            "rss_peak_kb_per_process": [tp_rss[r] for r in sorted(tp_rss)]}

    # Data-parallel model averaging: one config at a time, W workers on their partitions, average per epoch.
    if data_parallel:
        pool.all([("load", {"data_url": data_url, "meta": meta, "partition": r}) for r in range(workers)])
        t0 = time.time()
        dp_val = {}
        for m, p in items:
            weights = pool.all([("dp_init", {"builder": builder, "params": p, "meta": meta, "seed": seeds[0]})]
                               * workers)[0]
            for e in range(epochs):
                ans = pool.all([("dp_epoch", {"data_url": data_url, "meta": meta, "partition": r, "weights": weights,
                                              "seed": seeds[0] * 1000 + e, "batch_size": p.get("batch_size", 64)})
                                for r in range(workers)])
                n = sum(a["n"] for a in ans)
                weights = [sum(a["weights"][i] * (a["n"] / n) for a in ans) for i in range(len(ans[0]["weights"]))]
            pool.ask(0, "dp_eval", data_url=data_url, meta=meta, weights=weights)
            dp_val[m] = pool.answer(0)
        out["data_parallel"] = {"makespan_s": time.time() - t0, "val_loss": dp_val}

    # Fixed cost of fit() per hop on a warm model (hop-sized data), for the overhead split.
    pool.ask(0, "fit_setup", builder=builder, params=items[0][1], meta=meta, data_url=data_url)
    out["fit_setup"] = pool.answer(0)
    return out


def _wait_any(pool: Pool, ranks: list[int]) -> int:
    from multiprocessing.connection import wait

    ready = wait([pool.conns[r] for r in ranks])
    return next(r for r in ranks if pool.conns[r] in ready)
