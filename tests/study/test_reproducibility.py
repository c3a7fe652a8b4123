"""Same spec + seed in two stores → same configs, split, hop order and metrics; `replay` reproduces a run.

A TPE study (3 configs in batches of 2 + 1) so the batched path is covered too. Everything runs on local
Spark, workers included: thread workers (epoch.thread_launcher) share one process's global Keras seed, so
concurrent hops race on it and metrics differ between runs (found while writing this test).
"""
import os

import numpy as np
import pytest

from cerebro_ops import study

from cerebro_ops.data import reader
from cerebro_ops.replay import history_diff, hop_orders, replay
from cerebro_ops.example_data import make_example_data
from cerebro_ops.core.spec import parse_spec
from cerebro_ops.store import run_store

pytestmark = pytest.mark.spark
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def make_spec(tmp, store, source):
    return parse_spec({
        "name": "repro", "seed": 11,
        "data": {"source": str(source), "label": "label", "numeric": ["x1", "x2", "x3", "x4"],
                 "categorical": ["color"]},
        "model": {"builder": "cerebro_ops.builders:mlp"},
        "search": {"method": "tpe", "num_configs": 3, "batch_size": 2,
                   "space": {"learning_rate": {"loguniform": [1e-3, 3e-2]}, "hidden_units": [4, 8],
                             "batch_size": {"quniform": [64, 256, 64]}}},
        # fixed: two independent runs compare bit for bit; cost_aware orders depend on measured hop times
        "train": {"epochs": 2, "workers": 2, "metric": "val_accuracy", "hop_order": "fixed"},
        "runtime": {"spark_master": "local[2]", "store": str(tmp / store),
                    "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"}})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repro")
    make_example_data("dummy", tmp)
    out = []
    for store in ("a", "b"):
        spec = make_spec(tmp, store, tmp / "dummy.parquet")
        res = study.run(spec, register_model=False)
        out.append((spec, res["run_id"]))
    return out


def test_same_configs_split_hops_and_metrics(runs):
    (sa, ra), (sb, rb) = runs
    a, b = study.load_run(sa, ra), study.load_run(sb, rb)
    assert len(a.models) == 3 and a.tpe.batches == [["m000", "m001"], ["m002"]]
    assert a.configs == b.configs
    assert a.meta["counts"] == b.meta["counts"] and a.meta["rows"] == b.meta["rows"]
    da, db = run_store(sa.runtime.store, sa.name, ra).url("data"), run_store(sb.runtime.store, sb.name, rb).url("data")
    for split in ("train", "val"):
        for w in range(2):
            xa, ya = reader.load_partition(da, split, w, a.meta["input_shape"])
            xb, yb = reader.load_partition(db, split, w, b.meta["input_shape"])
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    ha, hb = hop_orders(sa, ra), hop_orders(sb, rb)
    assert ha == hb and len(ha) == 3 * 2  # 3 models x 2 epochs
    assert all(sorted(v) == [0, 1] for v in ha.values())
    assert history_diff(a, b) == []
    assert all(len(r.history) == 2 for r in a.models.values())


def test_replay_reproduces_the_run(runs):
    spec, run_id = runs[0]
    new_id, diffs = replay(spec, run_id)
    assert new_id != run_id
    assert diffs == []
    assert hop_orders(spec, new_id) == hop_orders(spec, run_id)
    replayed, recorded = study.load_run(spec, new_id), study.load_run(spec, run_id)
    assert replayed.replay_of.run_id == run_id and replayed.replay_of.batches == recorded.tpe.batches
    assert replayed.tpe.batches == recorded.tpe.batches and replayed.spec == recorded.spec
