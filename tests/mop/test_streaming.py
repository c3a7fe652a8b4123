"""Streamed partitions and partitioned validation, end to end through the epoch driver and real workers
(threads, TensorFlow): the same models and metrics as the cached path with the whole validation split."""
from __future__ import annotations

import io

import numpy as np
import pytest

from cerebro_ops.core import memory_budget
from cerebro_ops.data.stream import PartitionStream
from cerebro_ops.keras.trainer import DataInfo, HopTrainer
from cerebro_ops.mop.epoch import EpochContext, EpochDriver, thread_launcher
from cerebro_ops.store import Store
from tests.data import tables

MLP = "cerebro_ops.builders:mlp"
WIDTH = 6
PARAMS = {"hidden_units": 8, "num_layers": 1, "learning_rate": 0.01, "batch_size": 32}
CONFIGS = {"m0": PARAMS, "m1": {**PARAMS, "learning_rate": 0.003, "batch_size": 16}}
W = 2


def _arrays(blob: bytes) -> dict:
    with np.load(io.BytesIO(blob)) as z:
        return {k: z[k] for k in z.files}


def _close(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert abs(a[k] - b[k]) <= tol * max(1.0, abs(a[k])), (k, a[k], b[k])


def _folder_stream(folder: str, buffer_rows: int) -> PartitionStream:
    import glob
    return PartitionStream(sorted(glob.glob(f"{folder}/*.parquet")), (WIDTH,), buffer_rows)


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_streamed_hops_and_chained_evaluation_equal_the_cached_path(tmp_path, task):
    info = DataInfo((WIDTH,), task, 2 if task == "binary" else 1, label_std=2.5 if task == "regression" else None)
    x, y = tables.rows(700, WIDTH, 1, task)
    tables.write_partition(str(tmp_path / "p"), x, y, np.arange(len(x)), group_rows=100, files=2)
    trainer = HopTrainer(info)
    ckpt = trainer.initial_checkpoint(MLP, PARAMS, 3)
    cached, stats = trainer.train(MLP, PARAMS, ckpt, x, y, seed=9)
    streamed, sstats = trainer.train(MLP, PARAMS, ckpt, _folder_stream(str(tmp_path / "p"), 10_000), None, seed=9)
    a, b = _arrays(cached), _arrays(streamed)
    assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) <= 1e-6
    assert abs(stats["loss"] - sstats["loss"]) <= 1e-6
    small = [trainer.train(MLP, PARAMS, ckpt, _folder_stream(str(tmp_path / "p"), 96), None, seed=9) for _ in "ab"]
    assert small[0][0] == small[1][0] and small[0][1]["loss"] == small[1][1]["loss"]

    # validation: the whole split at once vs. three partitions chained (cached arrays, then streamed chunks)
    vx, vy = tables.rows(900, WIDTH, 2, task)
    whole = trainer.evaluate(MLP, PARAMS, cached, vx, vy)
    state = None
    for i, rows in enumerate(np.array_split(np.arange(len(vx)), 3)):
        split = [(vx[rows][:100], vy[rows][:100]), (vx[rows][100:], vy[rows][100:])]
        chunks = [(vx[rows], vy[rows])] if i < 2 else split
        state, metrics = trainer.evaluate_part(MLP, PARAMS, cached if i == 0 else None,
                                               chunks if i < 2 else iter(chunks), state)
    assert metrics["n"] == whole["n"] == 900
    _close(whole, metrics)
    assert set(whole) >= ({"loss", "accuracy", "auc"} if task == "binary" else {"loss", "mae", "rmse"})


def _run(root, validation: str, memory_mb, epochs: int = 2):
    store = Store((root / "run").as_uri())
    meta = {"input_shape": [WIDTH], "task": "binary", "num_classes": 2}
    # initial checkpoints made here: worker threads that build models at once race for Keras's global seed
    trainer = HopTrainer(DataInfo((WIDTH,), "binary", 2))
    start = {m: {"ckpt": f"ckpt/{m}/init.npz"} for m in CONFIGS}
    for m, ptr in start.items():
        ptr["sha256"] = store.write_blob(ptr["ckpt"], trainer.initial_checkpoint(MLP, CONFIGS[m], 3))
    results, records = [], []
    for epoch in range(1, epochs + 1):
        ctx = EpochContext(store, epoch, CONFIGS, start, MLP, 11, W, (root / "data").as_uri(), meta,
                           hop_order="fixed", validation=validation, memory_mb=memory_mb,
                           local_dir=str(root / "local"))
        res = EpochDriver(ctx, thread_launcher(W)).run()
        start = {m: r.ckpt for m, r in res.models.items()}
        results.append({m: (r.train_loss, r.val) for m, r in res.models.items()})
        records += res.records
    return results, records


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    for split, n, seed in (("train", 1200, 5), ("val", 400, 6)):
        x, y = tables.rows(n, WIDTH, seed)
        tables.write_split(str(root / "cached" / "data"), split, x, y, W, group_rows=150)
        tables.write_split(str(root / "streamed" / "data"), split, x, y, W, group_rows=150)
    return root


def test_an_epoch_streamed_with_partitioned_validation_equals_the_cached_epoch(data_root, monkeypatch):
    cached, cached_recs = _run(data_root / "cached", "whole", 4096)
    monkeypatch.setattr(memory_budget, "CACHED_COPIES", 10 ** 9)  # nothing fits: stream, with a buffer >= partition
    streamed, recs = _run(data_root / "streamed", "partitioned", 4096)
    for c, s in zip(cached, streamed):
        for m in CONFIGS:
            assert abs(c[m][0] - s[m][0]) <= 1e-6
            _close(c[m][1], s[m][1])
    assert {r["rows_from"] for r in cached_recs if r["kind"] == "train"} == {"store", "memory"}
    assert {r["data_mode"] for r in recs} == {"streamed"}
    evals = [r for r in recs if r["kind"] == "eval"]
    assert len(evals) == len(CONFIGS) * (W - 1) * 2 and all(r["n"] == 200 for r in evals)
    train = sorted((r for r in recs if r["kind"] == "train"), key=lambda r: (r["epoch"], r["start"]))
    for w in range(W):
        mine = [r["rows_from"] for r in train if r["partition"] == w]
        assert mine[0] == "store" and set(mine[1:]) == {"local_disk"}
    assert all(r["bytes_read"] > 0 for r in recs)
    # Each worker (a thread of this epoch here) traces the one architecture's evaluation loop once, in its first
    # link of a chain: a train hop's or an eval unit's record says so.
    for e, w in ((e, w) for e in (1, 2) for w in range(W)):
        links = sorted((r for r in recs if (r["epoch"], r["worker"]) == (e, w) and "eval_s" in r),
                       key=lambda r: r["start"])
        assert [r["eval_traced"] for r in links] == [True] + [False] * (len(links) - 1)


def test_a_small_shuffle_buffer_gives_the_same_metrics_twice(data_root, monkeypatch, tmp_path):
    monkeypatch.setattr(memory_budget, "CACHED_COPIES", 10 ** 9)
    budget = 150 * memory_budget.STREAM_COPIES * memory_budget.row_bytes((WIDTH,)) / (1 << 20)  # 150 rows
    import shutil
    for name in ("a", "b"):
        shutil.copytree(data_root / "cached" / "data", tmp_path / name / "data")
    first, recs = _run(tmp_path / "a", "partitioned", budget, epochs=1)
    second, _ = _run(tmp_path / "b", "partitioned", budget, epochs=1)
    assert first == second
    assert {r["data_mode"] for r in recs} == {"streamed"}


def _drain(sched, workers):
    """Run units greedily, worker by worker, until the epoch is finished; the units in completion order."""
    done = []
    while not sched.finished():
        progressed = False
        for w in range(workers):
            u = sched.assign(w)
            if u is not None:
                sched.complete(w, u)
                done.append(u)
                progressed = True
        assert progressed, "stuck: nothing runnable but the epoch is not finished"
    return done


def test_the_evaluation_chain_follows_each_models_visit_order_and_resumes():
    from cerebro_ops.core.scheduler import EVAL, TRAIN, MopScheduler

    sched = MopScheduler(["a", "b", "c"], 3, 1, 0)
    sched.chain_evaluations()
    units = _drain(sched, 3)
    for m, model in sched.models.items():
        mine = [u for u in units if u.model_id == m]
        assert [u.kind for u in mine] == [TRAIN] * 3 + [EVAL] * 2
        assert [u.partition for u in mine] == model.order + model.order[:2]
        assert [u.hop for u in mine] == [0, 1, 2, 3, 4]
    again = MopScheduler(["a", "b", "c"], 3, 1, 0, done=units[:7])
    again.chain_evaluations(units[:7])
    assert sorted(_drain(again, 3)) == sorted(units[7:])


def test_an_epoch_with_the_evaluation_chain_records_every_unit_once(tmp_path):
    from cerebro_ops.mop.epoch import load_records
    from tests.fake_workers import fake_launcher

    store = Store((tmp_path / "run").as_uri())
    configs = {f"m{i}": {"i": i} for i in range(3)}
    ctx = EpochContext(store, 1, configs, {m: None for m in configs}, "x:y", 0, 3, "file:///d", {},
                       validation="partitioned")
    res = EpochDriver(ctx, fake_launcher(3)).run()
    assert all(r.val == {"loss": 3.0} for r in res.models.values())
    recs = load_records(store, 1)
    assert len(recs) == 3 * (3 + 2) and sum(r["kind"] == "eval" for r in recs) == 6
    again = EpochDriver(ctx, fake_launcher(3)).run()  # a resumed epoch: nothing left to do
    assert len(load_records(store, 1)) == len(recs) and again.models["m0"].val == {"loss": 3.0}
