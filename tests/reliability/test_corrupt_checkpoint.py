"""A checkpoint that fails its checksum on load is reported by the worker; the driver invalidates the hop
that wrote it and redoes that hop from the previous good checkpoint. Fake workers: no Spark, no TF."""
from __future__ import annotations

import json

from cerebro_ops.mop.epoch import EpochContext, EpochDriver, load_records
from cerebro_ops.store import Store

from ..fake_workers import fake_launcher

W = 2
CONFIGS = {f"m{i}": {"i": i} for i in range(3)}


def _epoch(store, epoch, start, launcher):
    return EpochDriver(EpochContext(store, epoch, CONFIGS, start, "x:y", 0, W, "file:///d", {}), launcher).run()


def _two_epochs(tmp_path, name, corrupt_between=None):
    store = Store((tmp_path / name).as_uri())
    e1 = _epoch(store, 1, {m: None for m in CONFIGS}, fake_launcher(W))
    if corrupt_between:
        path = e1.models[corrupt_between].ckpt["ckpt"]
        store.write_bytes(path, store.read_bytes(path)[:-3])  # truncated: fails its checksum
    e2 = _epoch(store, 2, {m: r.ckpt for m, r in e1.models.items()}, fake_launcher(W))
    return store, e1, e2


def _trained(store, res):
    return {m: json.loads(store.read_bytes(r.ckpt["ckpt"])) for m, r in res.models.items()}


def test_corrupt_checkpoint_between_epochs_rolls_back_and_redoes_the_hop(tmp_path):
    ref_store, _, ref = _two_epochs(tmp_path, "ref")
    store, e1, e2 = _two_epochs(tmp_path, "bad", corrupt_between="m1")
    assert all(r.status == "RUNNING" for r in e2.models.values())
    # same models, same metrics as without the fault: the redone hop rebuilt the same checkpoint
    assert _trained(store, e2) == _trained(ref_store, ref)
    assert {m: r.val for m, r in e2.models.items()} == {m: r.val for m, r in ref.models.items()}
    rolled = [r for r in e2.records if r.get("status") == "rollback"]
    assert [r["model_id"] for r in rolled] == ["m1"] and "checksum" in rolled[0]["reason"]
    # epoch 1's last hop of m1 was redone: its record exists again and the file now matches it
    last = max((r for r in load_records(store, 1) if r["model_id"] == "m1" and r["kind"] == "train"),
               key=lambda r: r["hop"])
    assert last["ckpt"] == e1.models["m1"].ckpt["ckpt"]
    assert store.read_blob(last["ckpt"], last["sha256"])
    # every unit of epoch 2 is recorded exactly once
    keys = [(r["model_id"], r["kind"], r["partition"]) for r in load_records(store, 2)]
    assert len(keys) == len(set(keys)) == len(CONFIGS) * W  # train hops; the last one evaluates


def test_corrupt_checkpoint_within_an_epoch(tmp_path):
    ref_store = Store((tmp_path / "ref").as_uri())
    ref = _epoch(ref_store, 1, {m: None for m in CONFIGS}, fake_launcher(W))
    store = Store((tmp_path / "bad").as_uri())
    calls = []
    res = _epoch(store, 1, {m: None for m in CONFIGS}, fake_launcher(W, corrupt_after_write="m2/e1-h0.npz", calls=calls))
    assert all(r.status == "RUNNING" for r in res.models.values())
    assert _trained(store, res) == _trained(ref_store, ref)
    assert any(r.get("status") == "rollback" and r["model_id"] == "m2" for r in res.records)
    assert len(calls) == 2  # the epoch pass, then the repair pass for m2
    keys = [(r["model_id"], r["kind"], r["partition"]) for r in load_records(store, 1)]
    assert len(keys) == len(set(keys)) == len(CONFIGS) * W  # train hops; the last one evaluates


def test_checkpoint_corrupt_every_time_fails_only_that_model(tmp_path):
    """A checkpoint that keeps coming back corrupt (a broken disk) fails its model, not the epoch."""
    store = Store((tmp_path / "s").as_uri())
    e1 = _epoch(store, 1, {m: None for m in CONFIGS}, fake_launcher(W))
    bad = e1.models["m0"].ckpt["ckpt"]

    class Garble:  # garble m0's last epoch-1 checkpoint every time any pass starts
        def __call__(self, task):
            store.write_bytes(bad, b"junk")
            return fake_launcher(W)(task)
    e2 = _epoch(store, 2, {m: r.ckpt for m, r in e1.models.items()}, Garble())
    assert e2.models["m0"].status == "FAILED"
    assert all(e2.models[m].status == "RUNNING" for m in ("m1", "m2"))
