"""The epoch driver (scheduler + hop server + store records) with fake workers: no Spark, no TensorFlow."""
import json

from cerebro_ops.epoch import load_records, run_epoch
from cerebro_ops.store import Store

from .fake_workers import fake_launcher


def _run(tmp_path, epoch=1, start=None, **kw):
    store = Store((tmp_path / "run").as_uri())
    configs = {f"m{i}": {"i": i} for i in range(4)}
    start = start or {m: None for m in configs}
    return store, run_epoch(store, epoch, configs, start, "x:y", 0, 3, fake_launcher(3, **kw), "file:///d", {})


def test_every_model_trains_on_every_partition_and_is_evaluated(tmp_path):
    store, res = _run(tmp_path)
    for m, r in res.models.items():
        assert r.status == "RUNNING"
        state = json.loads(store.read_bytes(r.ckpt["ckpt"]))
        assert sorted(state) == [0, 1, 2]
        assert r.val == {"loss": 3.0}
    recs = load_records(store, 1)
    assert len(recs) == 4 * 3 * 2


def test_config_failure_is_isolated(tmp_path):
    _, res = _run(tmp_path, fail="m2")
    assert res.models["m2"].status == "FAILED"
    assert "nan" in res.models["m2"].reason
    assert all(res.models[m].status == "RUNNING" for m in ("m0", "m1", "m3"))


def test_lost_worker_unit_is_retried_and_epoch_completes(tmp_path):
    store, res = _run(tmp_path, die_once=("m1", 2))
    assert all(r.status == "RUNNING" for r in res.models.values())
    assert sorted(json.loads(store.read_bytes(res.models["m1"].ckpt["ckpt"]))) == [0, 1, 2]
    assert any(r["status"] == "retry" for r in res.records)


def test_rerun_of_finished_epoch_does_not_retrain(tmp_path):
    store, first = _run(tmp_path)
    n = len(load_records(store, 1))
    _, again = _run(tmp_path)
    assert len(load_records(store, 1)) == n
    assert {m: r.ckpt for m, r in again.models.items()} == {m: r.ckpt for m, r in first.models.items()}


def test_partial_epoch_resumes_without_redoing_hops(tmp_path):
    store, full = _run(tmp_path)
    recs = sorted(load_records(store, 1), key=lambda r: r["hop"])
    # forget the second half of the records: as if the process died mid-epoch
    for r in recs[len(recs) // 2:]:
        store.delete(f"hops/e1/{r['model_id']}-{r['kind']}-p{r['partition']}.json")
    kept = {(r["model_id"], r["kind"], r["partition"]) for r in recs[: len(recs) // 2]}
    _, resumed = _run(tmp_path)
    keys = [(r["model_id"], r["kind"], r["partition"]) for r in resumed.records if r["status"] == "ok"]
    assert len(keys) == len(set(keys)) == 4 * 3 * 2, "a unit ran twice or not at all"
    assert kept < set(keys)
    assert {m: r.val for m, r in resumed.models.items()} == {m: r.val for m, r in full.models.items()}
