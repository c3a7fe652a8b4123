"""The epoch driver (scheduler + hop server + store records) with fake workers: no Spark, no TensorFlow."""
import json
import threading
import time

import pytest

from cerebro_ops.mop.epoch import (FAULT_HOLD_AFTER_PEER, FAULT_KILL_AFTER_HOPS, EpochContext, EpochDriver, Failure,
                                   FaultHooks, HoldAfterPeer, KillAfterRecords, WorkerSession, judge_failure,
                                   load_records)
from cerebro_ops.core.scheduler import MopScheduler
from cerebro_ops.store import Store

from tests.fake_workers import fake_launcher

CONFIGS = {f"m{i}": {"i": i} for i in range(4)}
UNITS = len(CONFIGS) * 3  # models x partitions (the last hop of each model also evaluates it)


def _run(tmp_path, epoch=1, start=None, hooks=FaultHooks(), on_record=None, **kw):
    store = Store((tmp_path / "run").as_uri())
    start = start or {m: None for m in CONFIGS}
    ctx = EpochContext(store, epoch, CONFIGS, start, "x:y", 0, 3, "file:///d", {})
    return store, EpochDriver(ctx, fake_launcher(3, **kw), hooks=hooks, on_record=on_record).run()


def _key(r):
    return (r["model_id"], r["kind"], r["partition"])


def test_every_model_trains_on_every_partition_and_is_evaluated(tmp_path):
    seen = []
    store, res = _run(tmp_path, on_record=seen.append)
    for m, r in res.models.items():
        assert r.status == "RUNNING"
        state = json.loads(store.read_bytes(r.ckpt["ckpt"]))
        assert sorted(state) == [0, 1, 2]
        assert r.val == {"loss": 3.0}
        assert r.train_loss == 1.0
    recs = load_records(store, 1)
    assert len(recs) == UNITS
    evaluated = [(r["model_id"], r["hop"]) for r in recs if "metrics" in r]
    assert sorted(evaluated) == [(m, 2) for m in sorted(CONFIGS)], "each model's last hop, and only it, evaluates"
    assert sorted(map(_key, seen)) == sorted(map(_key, recs)), "on_record sees each stored record once"
    assert store.read_json("hops/models-e1.json") == sorted(CONFIGS)


def test_config_failure_is_isolated(tmp_path):
    _, res = _run(tmp_path, fail="m2")
    assert res.models["m2"].status == "FAILED"
    assert "nan" in res.models["m2"].reason
    assert all(res.models[m].status == "RUNNING" for m in ("m0", "m1", "m3"))
    assert [r["status"] for r in res.records if r["model_id"] == "m2"] == ["failed"]


def test_lost_worker_unit_is_retried_and_epoch_completes(tmp_path):
    store, res = _run(tmp_path, die_once=("m1", 2))
    assert all(r.status == "RUNNING" for r in res.models.values())
    assert sorted(json.loads(store.read_bytes(res.models["m1"].ckpt["ckpt"]))) == [0, 1, 2]
    retried = [r for r in res.records if r["status"] == "retry"]
    assert [(r["model_id"], r["partition"]) for r in retried] == [("m1", 2)]
    assert len(load_records(store, 1)) == UNITS


def test_rerun_of_finished_epoch_does_not_retrain(tmp_path):
    store, first = _run(tmp_path)
    n = len(load_records(store, 1))
    calls = []
    _, again = _run(tmp_path, calls=calls)
    assert calls == [], "no worker was launched for a finished epoch"
    assert len(load_records(store, 1)) == n
    assert {m: r.ckpt for m, r in again.models.items()} == {m: r.ckpt for m, r in first.models.items()}


def test_partial_epoch_resumes_without_redoing_hops(tmp_path):
    store, full = _run(tmp_path)
    recs = sorted(load_records(store, 1), key=lambda r: r["hop"])
    # forget the second half of the records: as if the process died mid-epoch
    for r in recs[len(recs) // 2:]:
        store.delete(f"hops/e1/{r['model_id']}-{r['kind']}-p{r['partition']}.json")
    kept = {_key(r) for r in recs[: len(recs) // 2]}
    _, resumed = _run(tmp_path)
    keys = [_key(r) for r in resumed.records if r["status"] == "ok"]
    assert len(keys) == len(set(keys)) == UNITS, "a unit ran twice or not at all"
    assert kept < set(keys)
    assert {m: r.val for m, r in resumed.models.items()} == {m: r.val for m, r in full.models.items()}


class Crash(Exception):
    pass


def test_injected_crash_after_n_records_then_resume_redoes_nothing(tmp_path):
    def crash():
        raise Crash("driver killed")
    hook = KillAfterRecords(7, kill=crash)
    with pytest.raises(Crash):
        _run(tmp_path, hooks=FaultHooks((hook,)))
    assert hook.count >= 7
    stored = {_key(r) for r in load_records(Store((tmp_path / "run").as_uri()), 1)}
    assert 7 <= len(stored) < UNITS, "the crash came mid-epoch, after the 7th record was stored"

    new = []
    store, res = _run(tmp_path, on_record=new.append)
    assert not {_key(r) for r in new} & stored, "a recorded unit ran again"
    assert len(new) == UNITS - len(stored)
    assert all(r.status == "RUNNING" and r.val == {"loss": 3.0} for r in res.models.values())
    assert len(load_records(store, 1)) == UNITS


def test_env_switch_builds_one_kill_hook_per_process(monkeypatch):
    monkeypatch.delenv(FAULT_KILL_AFTER_HOPS, raising=False)
    monkeypatch.delenv(FAULT_HOLD_AFTER_PEER, raising=False)
    assert FaultHooks.from_env() == FaultHooks()
    monkeypatch.setenv(FAULT_KILL_AFTER_HOPS, "11")
    (hook,) = FaultHooks.from_env().after_write
    assert isinstance(hook, KillAfterRecords) and hook.n == 11
    # the count runs over all epochs of the process, so every epoch's driver gets the same hook
    assert FaultHooks.from_env().after_write == (hook,)


def test_kill_hook_fires_from_the_nth_record():
    fired = []
    hook = KillAfterRecords(3, kill=lambda: fired.append(hook.count))
    for _ in range(4):
        hook({})
    assert fired == [3, 4]


def test_hold_hook_stops_every_worker_until_released(tmp_path):
    release = tmp_path / "release"
    hold = HoldAfterPeer("127.0.0.1", str(release), poll_s=0.01)
    stored_while_held = []

    def release_later():
        folder = tmp_path / "run" / "hops" / "e1"
        while not (folder.exists() and list(folder.glob("*.json"))):
            time.sleep(0.01)
        time.sleep(0.5)  # unheld, the fake workers finish every unit in far less
        stored_while_held.append(len(list(folder.glob("*.json"))))
        release.touch()

    threading.Thread(target=release_later, daemon=True).start()
    store, res = _run(tmp_path, hooks=FaultHooks((hold,)))
    assert hold.held and stored_while_held == [1]
    assert len(load_records(store, 1)) == UNITS and all(r.status == "RUNNING" for r in res.models.values())


def test_hold_hook_ignores_other_peers_and_gives_up_after_max_s(tmp_path):
    other = HoldAfterPeer("198.18.0.99", str(tmp_path / "never"))
    bounded = HoldAfterPeer("127.0.0.1", str(tmp_path / "never"), max_s=0.3)
    t0 = time.monotonic()
    store, _ = _run(tmp_path, hooks=FaultHooks((other, bounded)))
    assert not other.held and bounded.held and time.monotonic() - t0 >= 0.3
    assert len(load_records(store, 1)) == UNITS


def test_env_switches_build_the_hold_hook_then_the_kill_hook(monkeypatch):
    monkeypatch.setenv(FAULT_HOLD_AFTER_PEER, "198.18.0.12:/tmp/release")
    monkeypatch.setenv(FAULT_KILL_AFTER_HOPS, "5")
    hold, kill = FaultHooks.from_env().after_write
    assert (hold.peer, hold.release, kill.n) == ("198.18.0.12", "/tmp/release", 5)
    assert FaultHooks.from_env().after_write == (hold, kill), "one hold per process: it holds once per run"
    monkeypatch.setenv(FAULT_HOLD_AFTER_PEER, "198.18.0.13")
    with pytest.raises(ValueError, match="IP:FILE"):
        FaultHooks.from_env()


# ------------------------------------------------------------------------------------- failure policy
def _running_unit(max_retries=1):
    sched = MopScheduler(["a", "b"], 2, 1, 0, max_retries=max_retries)
    return sched, sched.assign(0)


def _never(model_id):
    raise AssertionError("rolled back a unit whose checkpoint is fine")


def test_transient_failure_retries_then_gives_up():
    sched, u = _running_unit(max_retries=1)
    assert judge_failure(Failure(0, u, "timeout", False, False), sched, _never).status == "retry"
    assert sched.assign(0) == u
    v = judge_failure(Failure(0, u, "timeout", False, False), sched, _never)
    assert (v.status, v.reason) == ("failed", "gave up after 1 retries: timeout")
    assert sched.failed_models() == [u.model_id]


def test_config_failure_stops_the_model_at_once():
    sched, u = _running_unit(max_retries=5)
    v = judge_failure(Failure(0, u, "loss became nan", True, False), sched, _never)
    assert (v.status, v.reason, v.bad_epoch) == ("failed", "loss became nan", None)
    assert sched.failed_models() == [u.model_id] and not sched.running


def test_corrupt_checkpoint_rolls_back_or_else_counts_as_transient():
    sched, u = _running_unit()
    v = judge_failure(Failure(0, u, "checksum", False, True), sched, lambda m: 1)
    assert (v.status, v.bad_epoch) == ("rollback", 1)
    assert sched.failed_models() == [u.model_id], "paused until the repair"
    sched, u = _running_unit()
    asked = []
    v = judge_failure(Failure(0, u, "checksum", False, True), sched, lambda m: asked.append(m))
    assert v.status == "retry" and asked == [u.model_id] and sched.failed_models() == []


def test_an_older_run_with_eval_records_resumes_with_their_metrics(tmp_path):
    """Records written when evaluation was a unit of its own (one per validation shard) still summarise:
    the metrics are their example-weighted mean, and nothing is redone."""
    store, first = _run(tmp_path)
    for r in load_records(store, 1):
        if "metrics" in r:  # as an older run stored it: the last hop without metrics, eval units beside it
            r.pop("metrics")
            store.write_json(f"hops/e1/{r['model_id']}-train-p{r['partition']}.json", r)
            for p, (loss, n) in enumerate([(1.0, 10), (4.0, 30), (2.0, 0)]):
                store.write_json(f"hops/e1/{r['model_id']}-eval-p{p}.json", {
                    "epoch": 1, "model_id": r["model_id"], "partition": p, "kind": "eval", "hop": p, "status": "ok",
                    "metrics": {"loss": loss, "n": n}, "n": n, "start": 0, "end": 0, "worker": p})
    calls = []
    _, again = _run(tmp_path, calls=calls)
    assert calls == []
    assert all(r.val == {"loss": (1.0 * 10 + 4.0 * 30) / 40} for r in again.models.values())


# ------------------------------------------------------------------------------ workers kept across epochs
def _epochs(tmp_path, session, epochs=3, launcher=None):
    """`epochs` epochs of CONFIGS, each from the previous one's checkpoints, through `session`."""
    store = Store((tmp_path / "run").as_uri())
    start = {m: None for m in CONFIGS}
    results = []
    for epoch in range(1, epochs + 1):
        ctx = EpochContext(store, epoch, CONFIGS, start, "x:y", 0, 3, "file:///d", {}, validation="partitioned")
        res = EpochDriver(ctx, launcher, session=session).run()
        start = {m: r.ckpt for m, r in res.models.items()}
        results.append(res)
    return store, results


def test_workers_kept_open_serve_every_epoch_from_one_launch(tmp_path):
    calls = []
    session = WorkerSession(fake_launcher(3, calls=calls), keep_open=True)
    store, results = _epochs(tmp_path / "kept", session)
    assert calls == [1] and session.launches == 1, "one launch served the three epochs"
    assert session._open is not None and not session._open.returned.is_set(), "the workers wait for more"
    assert session.close() == [] and session._open is None
    for epoch, res in enumerate(results, 1):
        assert len(load_records(store, epoch)) == len(CONFIGS) * (2 * 3 - 1)  # 3 train + 2 eval links each
        for r in res.models.values():
            assert _visits(store, r.ckpt) == [[0, 1, 2]] * epoch
            assert r.val == {"loss": 3.0 * epoch}
    fresh_calls = []
    _, fresh = _epochs(tmp_path / "fresh", WorkerSession(fake_launcher(3, calls=fresh_calls)))
    assert fresh_calls == [1, 1, 1], "without keep_open each epoch launches its own workers"
    assert [{m: r.val for m, r in res.models.items()} for res in fresh] == \
        [{m: r.val for m, r in res.models.items()} for res in results]


def test_a_kept_session_whose_workers_ended_launches_again(tmp_path):
    calls = []
    launch = fake_launcher(3, calls=calls)
    session = WorkerSession(launch, keep_open=True)
    _epochs(tmp_path, session, epochs=1)
    session._open.server.stop()  # the workers' job ends between epochs (e.g. the executors went away)
    session._open.thread.join(timeout=10)
    assert session._open.returned.is_set()
    store = Store((tmp_path / "run").as_uri())
    start = {m: _last_ckpt(store, m) for m in CONFIGS}
    ctx = EpochContext(store, 2, CONFIGS, start, "x:y", 0, 3, "file:///d", {}, validation="partitioned")
    res = EpochDriver(ctx, launch, session=session).run()
    session.close()
    assert calls == [1, 1] and session.launches == 2
    assert all(_visits(store, r.ckpt) == [[0, 1, 2]] * 2 for r in res.models.values())


def _visits(store, ckpt) -> list[list[int]]:
    """The partitions a fake model trained on, epoch by epoch (each epoch in its own hop order), sorted."""
    state = json.loads(store.read_bytes(ckpt["ckpt"]))
    return [sorted(state[i:i + 3]) for i in range(0, len(state), 3)]


def _last_ckpt(store, model):
    rec = max((r for r in load_records(store, 1) if r["model_id"] == model and r["kind"] == "train"),
              key=lambda r: r["hop"])
    return {"ckpt": rec["ckpt"], "sha256": rec["sha256"]}


def test_a_kept_session_repairs_a_corrupt_checkpoint_with_the_same_workers(tmp_path):
    calls = []
    session = WorkerSession(fake_launcher(3, calls=calls, corrupt_after_write="e1-h0.npz"), keep_open=True)
    store, results = _epochs(tmp_path, session, epochs=2)
    session.close()
    assert calls == [1], "the repair pass ran on the workers kept open"
    assert [r["status"] for r in results[0].records if r["status"] == "rollback"] == ["rollback"] * len(CONFIGS)
    for r in results[-1].models.values():
        assert r.status == "RUNNING"
        assert _visits(store, r.ckpt) == [[0, 1, 2]] * 2


@pytest.mark.parametrize("validation", ["whole", "partitioned"])
def test_each_model_is_handed_out_once_as_soon_as_its_result_is_final(tmp_path, validation):
    """on_model_done gets each model's result right after its last unit of the epoch (its evaluation), while
    other models still train; it is the result the epoch ends with."""
    events = []
    store = Store((tmp_path / "run").as_uri())
    ctx = EpochContext(store, 1, CONFIGS, {m: None for m in CONFIGS}, "x:y", 0, 3, "file:///d", {},
                       validation=validation)
    res = EpochDriver(ctx, fake_launcher(3), on_record=lambda r: events.append(("record", r["model_id"], r["hop"])),
                      on_model_done=lambda r: events.append(("done", r.model_id, r))).run()
    done = [e for e in events if e[0] == "done"]
    assert sorted(m for _, m, _ in done) == sorted(CONFIGS)
    last_hop = 2 + (2 if validation == "partitioned" else 0)  # 3 train hops, then 2 chained evaluations
    for _, m, early in done:
        final = res.models[m]
        assert (early.train_loss, early.val, early.ckpt) == (final.train_loss, final.val, final.ckpt)
        i = events.index(("done", m, early))
        assert events[i - 1] == ("record", m, last_hop)  # right after its final record, not at the epoch's end
    assert events.index(done[0]) < max(i for i, e in enumerate(events) if e[0] == "record")


def test_a_failing_consumer_does_not_stop_the_epoch(tmp_path, caplog):
    def broken(result):
        raise RuntimeError("tracking down")

    store = Store((tmp_path / "run").as_uri())
    ctx = EpochContext(store, 1, CONFIGS, {m: None for m in CONFIGS}, "x:y", 0, 3, "file:///d", {})
    res = EpochDriver(ctx, fake_launcher(3), on_model_done=broken).run()
    assert all(r.status == "RUNNING" and r.val == {"loss": 3.0} for r in res.models.values())
    assert "the early result of m0 was not handed out" in caplog.text
