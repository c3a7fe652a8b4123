"""The Spark launcher with the authenticated hop protocol: the per-pass secret travels inside EpochTask to
the Spark Python workers, which use it to connect back; a local master with too few task slots is refused
before any job starts. Fake training (no TensorFlow), real Spark."""
from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest

from cerebro_ops.mop.epoch import EpochContext, EpochDriver, load_records
from cerebro_ops.core.errors import ClusterError
from cerebro_ops.mop.hop_server import HopTimeouts
from cerebro_ops.spark import epoch_job
from cerebro_ops.store import Store

pytestmark = pytest.mark.spark
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

CONFIGS = {f"m{i}": {"i": i} for i in range(3)}


@pytest.fixture(scope="module")
def spark():
    from cerebro_ops.spark.session import get_spark

    return get_spark("local[2]")


def fake_entry(task, batches, env=None):
    """spark_entry's shape with a trivial unit: a checkpoint is the list of partitions trained on."""
    from cerebro_ops.mop.hop_server import HopClient

    store = Store(task.store_uri)
    for batch in batches:
        rows = []
        for p in batch["partition"].tolist():
            client = HopClient(task.host, task.port, int(p), secret=task.secret, heartbeat_s=task.heartbeat_s)
            hops = 0
            while not (msg := client.next()).get("done"):
                u = msg["unit"]
                state = json.loads(store.read_blob(msg["ckpt_in"], msg["sha_in"])) if msg["ckpt_in"] else []
                sha = store.write_blob(msg["ckpt_out"], json.dumps(state + [u["partition"]]).encode())
                rec = {"loss": 1.0, "n": 10, "ckpt": msg["ckpt_out"], "sha256": sha, "start": 0, "end": 0,
                       "worker": int(p), "pid": os.getpid(), "secret_bytes": len(task.secret)}
                if msg.get("evaluate"):
                    rec.update(metrics={"loss": float(len(state) + 1), "n": 10}, eval_s=0.0)
                client.result(u, rec)
                hops += 1
            client.close()
            rows.append({"partition": int(p), "hops": hops, "busy_s": 0.0, "pid": os.getpid()})
        yield pd.DataFrame(rows, columns=["partition", "hops", "busy_s", "pid"]).astype(
            {"partition": "int64", "hops": "int64", "busy_s": "float64", "pid": "int64"})


def test_spark_tasks_get_the_secret_and_connect_with_it(spark, tmp_path, monkeypatch):
    monkeypatch.setattr(epoch_job, "spark_entry", fake_entry)
    monkeypatch.delenv("CEREBRO_DRIVER_HOST", raising=False)
    store = Store((tmp_path / "run").as_uri())
    ctx = EpochContext(store, 1, CONFIGS, {m: None for m in CONFIGS}, "x:y", 0, 2, "file:///d", {})
    launcher = epoch_job.spark_launcher(spark, 2)
    assert launcher.advertised_host() == "127.0.0.1" and launcher.task_slots() == 2
    res = EpochDriver(ctx, launcher).run()
    recs = load_records(store, 1)
    assert len(recs) == len(CONFIGS) * 2 and all(r["status"] == "ok" for r in recs)
    assert {r["secret_bytes"] for r in recs} == {32}, "every Spark task had the pass's secret"
    assert os.getpid() not in {r["pid"] for r in recs}, "the units ran in Spark's Python workers"
    assert all(r.status == "RUNNING" and r.val == {"loss": 2.0} for r in res.models.values())


def test_a_local_master_with_too_few_slots_is_refused_before_the_job(spark, tmp_path):
    store = Store((tmp_path / "run").as_uri())
    ctx = EpochContext(store, 1, CONFIGS, {m: None for m in CONFIGS}, "x:y", 0, 3, "file:///d", {})
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match=r"3 workers must run at once.*local\[3\] or lower train.workers"):
        EpochDriver(ctx, epoch_job.spark_launcher(spark, 3), timeouts=HopTimeouts(connect_s=60.0)).run()
    # as soon as the launcher gives up, not after the workers' connect timeout
    assert time.monotonic() - t0 < 30.0
    assert load_records(store, 1) == []
