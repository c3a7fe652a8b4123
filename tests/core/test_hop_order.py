"""Hop orders: MOP's invariants under the cost-aware order, determinism, the recorded order of an epoch, the
gain on a heterogeneous grid (simulated clock), and the spec option."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.simulate import run_epoch
from cerebro_ops.mop.epoch import EpochContext, EpochDriver, RecordLog, epoch_hop_order, load_records
from cerebro_ops.core.errors import SpecError
from cerebro_ops.core.hop_order import (EpochOrder, LeastAdvancedFirst, LongestRemainingWorkFirst, make_order,
                                   spread_rotations, unit_costs)
from cerebro_ops.core.scheduler import MopScheduler, visit_orders
from cerebro_ops.core.spec import parse_spec
from cerebro_ops.store import Store

from tests.fake_workers import fake_launcher
from .test_spec import MIN, with_

costs_st = st.floats(0.01, 100.0, allow_nan=False)


@settings(max_examples=120, deadline=None)
@given(n_models=st.integers(1, 14), workers=st.integers(1, 7), epoch=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1), data=st.data())
def test_cost_aware_order_keeps_mops_invariants(n_models, workers, epoch, seed, data):
    """Each model visits every partition once, in its order; no model on two workers, no worker running two
    units, no worker idle while a unit is runnable on it (run_epoch checks the last three at every event)."""
    models = [f"m{i:02d}" for i in range(n_models)]
    costs = {m: data.draw(costs_st) for m in models}
    noise = data.draw(st.lists(st.floats(0.5, 2.0), min_size=n_models * workers, max_size=n_models * workers))
    order = LongestRemainingWorkFirst(costs)
    res = run_epoch(models, workers, epoch, seed, order,
                    lambda m, p: costs[m] * noise[models.index(m) * workers + p], check=True)
    orders = order.visit_orders(models, workers, epoch, seed)
    for m in models:
        hops = sorted((r for r in res["records"] if r["model_id"] == m), key=lambda r: r["start"])
        assert [r["partition"] for r in hops] == orders[m]
        assert sorted(orders[m]) == list(range(workers))
        assert all(r["worker"] == r["partition"] for r in hops)
    for w in range(workers):  # a worker's units never overlap
        mine = sorted((r["start"], r["end"]) for r in res["records"] if r["worker"] == w)
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(mine, mine[1:]))
    assert res["makespan"] >= res["lb"] - 1e-9


@settings(max_examples=80, deadline=None)
@given(n_models=st.integers(1, 20), workers=st.integers(1, 8), seed=st.integers(0, 10**6), data=st.data())
def test_spread_rotations_start_heavy_models_apart_and_stay_balanced(n_models, workers, seed, data):
    models = [f"m{i}" for i in range(n_models)]
    # distinct costs, so "the W heaviest" is one set (equal costs are dealt in a seeded order)
    costs = dict(zip(models, data.draw(st.lists(costs_st, min_size=n_models, max_size=n_models, unique=True))))
    orders = spread_rotations(models, costs, workers, 2, seed)
    base = next(iter(orders.values()))
    rotations = [base[k:] + base[:k] for k in range(workers)]
    assert all(o in rotations for o in orders.values())
    for step in range(workers):
        load = [sum(o[step] == p for o in orders.values()) for p in range(workers)]
        assert max(load) - min(load) <= 1
    heaviest = sorted(models, key=lambda m: -costs[m])[:workers]
    assert len({orders[m][0] for m in heaviest}) == len(heaviest), "the W heaviest start on W partitions"


def test_same_seed_and_costs_give_the_same_orders_and_picks():
    models = [f"m{i}" for i in range(12)]
    costs = {m: float(1 + (i * 7) % 5) for i, m in enumerate(models)}
    a, b = LongestRemainingWorkFirst(dict(costs)), LongestRemainingWorkFirst(dict(costs))
    assert a.visit_orders(models, 4, 3, 9) == b.visit_orders(models, 4, 3, 9)
    sa, sb = MopScheduler(models, 4, 3, 9, order=a), MopScheduler(models, 4, 3, 9, order=b)
    assert [sa.runnable_for(w) for w in range(4)] == [sb.runnable_for(w) for w in range(4)]
    other = {**costs, "m0": 100.0}
    assert a.visit_orders(models, 4, 3, 9) != LongestRemainingWorkFirst(other).visit_orders(models, 4, 3, 9)


def test_the_pick_is_the_model_with_the_most_work_left():
    order = LongestRemainingWorkFirst({"a": 1.0, "b": 5.0, "c": 5.0})
    # b (5 s x 4 hops left) before c (5 s x 2 left) before a (1 s x 4 left); equal work: by id
    keys = sorted(["a", "b", "c"], key=lambda m: order.priority(m, {"a": 0, "b": 0, "c": 2}[m], 4))
    assert keys == ["b", "c", "a"]
    assert sorted(["c", "b"], key=lambda m: order.priority(m, 0, 4)) == ["b", "c"]


def test_least_advanced_first_is_todays_rule():
    models = [f"m{i}" for i in range(9)]
    assert LeastAdvancedFirst().visit_orders(models, 3, 2, 5) == visit_orders(models, 3, 2, 5)
    a, b = MopScheduler(models, 3, 2, 5), MopScheduler(models, 3, 2, 5, order=LeastAdvancedFirst())
    for _ in range(len(models) * 3):
        w = next(w for w in range(3) if a.runnable_for(w))
        ua, ub = a.assign(w), b.assign(w)
        assert ua == ub
        a.complete(w, ua)
        b.complete(w, ub)


@pytest.mark.parametrize("workers", [4, 8])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cost_aware_beats_or_equals_todays_order_on_a_heterogeneous_grid(workers, seed):
    """2W models with 20x different unit times (batch 32 next to 1024, hidden 16 next to 256)."""
    models = [f"m{i}" for i in range(2 * workers)]
    costs = {m: (10.0, 1.0, 3.0, 0.5)[i % 4] for i, m in enumerate(models)}
    today = run_epoch(models, workers, 2, seed, LeastAdvancedFirst(), lambda m, p: costs[m])
    aware = run_epoch(models, workers, 2, seed, LongestRemainingWorkFirst(costs), lambda m, p: costs[m])
    assert aware["makespan"] <= today["makespan"] + 1e-9
    assert aware["ratio"] <= 1.05


def test_unit_costs_are_median_train_times_of_finished_hops():
    recs = [{"model_id": "a", "kind": "train", "train_s": t, "status": "ok"} for t in (1.0, 9.0, 2.0)]
    recs += [{"model_id": "b", "kind": "train", "start": 10.0, "end": 14.0},
             {"model_id": "b", "kind": "eval", "train_s": 99.0},
             {"model_id": "b", "kind": "train", "train_s": 50.0, "status": "retry"}]
    assert unit_costs(recs) == {"a": 2.0, "b": 4.0}


def test_make_order_falls_back_to_todays_rule_without_costs():
    assert isinstance(make_order("fixed", {"a": 3.0}, ["a"]), LeastAdvancedFirst)
    assert isinstance(make_order("cost_aware", {}, ["a"]), LeastAdvancedFirst)
    assert isinstance(make_order("cost_aware", {"other": 1.0}, ["a"]), LeastAdvancedFirst)
    assert isinstance(make_order("cost_aware", {"a": 0.0}, ["a"]), LeastAdvancedFirst)
    chosen = make_order("cost_aware", {"a": 3.0, "other": 1.0}, ["a", "b"])
    assert isinstance(chosen, LongestRemainingWorkFirst) and chosen.costs == {"a": 3.0}
    with pytest.raises(ValueError, match="unknown hop order"):
        make_order("fastest", {}, ["a"])


# ---------------------------------------------------------------------------------- the epoch's recorded order
MODELS = ["m0", "m1", "m2", "m3"]


def _ctx(store, epoch, **kw):
    kw.setdefault("hop_order", "cost_aware")
    return EpochContext(store, epoch, {m: {} for m in MODELS}, {m: None for m in MODELS}, "x:y", 0, 3,
                        "file:///d", {}, **kw)


def _epoch1_records(store, times=(8.0, 1.0, 4.0, 0.5)):
    log = RecordLog(store)
    for m, t in zip(MODELS, times):
        for p in range(3):
            log.write({"epoch": 1, "model_id": m, "partition": p, "kind": "train", "hop": p, "status": "ok",
                       "train_s": t, "start": 0.0, "end": t, "worker": p})


def test_an_epoch_records_its_order_and_a_resume_reads_it_back(tmp_path):
    store = Store((tmp_path / "run").as_uri())
    _epoch1_records(store)
    order = epoch_hop_order(_ctx(store, 2), MODELS, RecordLog(store))
    assert isinstance(order, LongestRemainingWorkFirst)
    assert order.costs == {"m0": 8.0, "m1": 1.0, "m2": 4.0, "m3": 0.5}
    logged = store.read_json(EpochOrder(store, 2, MODELS).name)
    assert logged["policy"] == "longest_remaining_work_first" and logged["costs"] == order.costs
    assert logged["models"] == MODELS and logged["requested"] == "cost_aware"
    _epoch1_records(store, times=(0.1, 0.2, 0.3, 9.0))  # later records do not change a chosen order
    again = epoch_hop_order(_ctx(store, 2), MODELS, RecordLog(store))
    assert again.visit_orders(MODELS, 3, 2, 0) == order.visit_orders(MODELS, 3, 2, 0)


def test_fixed_spec_option_and_epochs_started_without_a_record_use_todays_rule(tmp_path):
    store = Store((tmp_path / "a").as_uri())
    _epoch1_records(store)
    assert isinstance(epoch_hop_order(_ctx(store, 2, hop_order="fixed"), MODELS, RecordLog(store)),
                      LeastAdvancedFirst)
    old = Store((tmp_path / "b").as_uri())  # an epoch begun before orders were recorded
    _epoch1_records(old)
    RecordLog(old).write({"epoch": 2, "model_id": "m0", "partition": 1, "kind": "train", "hop": 0,
                          "status": "ok", "train_s": 1.0})
    assert isinstance(epoch_hop_order(_ctx(old, 2), MODELS, RecordLog(old)), LeastAdvancedFirst)


def test_a_replay_trains_with_the_recorded_runs_orders(tmp_path):
    recorded, replay = Store((tmp_path / "rec").as_uri()), Store((tmp_path / "new").as_uri())
    _epoch1_records(recorded)
    first = epoch_hop_order(_ctx(recorded, 2), MODELS, RecordLog(recorded))
    _epoch1_records(replay, times=(0.5, 4.0, 1.0, 8.0))  # the replay's own epoch 1 ran at other speeds
    again = epoch_hop_order(_ctx(replay, 2, replay_store=recorded), MODELS, RecordLog(replay))
    assert again.describe() == first.describe()


def test_the_driver_trains_epoch_2_in_the_cost_aware_visit_orders(tmp_path):
    store = Store((tmp_path / "run").as_uri())
    _epoch1_records(store)
    EpochDriver(_ctx(store, 2), fake_launcher(3)).run()
    expected = LongestRemainingWorkFirst({"m0": 8.0, "m1": 1.0, "m2": 4.0, "m3": 0.5}).visit_orders(MODELS, 3, 2, 0)
    recs = [r for r in load_records(store, 2) if r["kind"] == "train"]
    got = {m: [r["partition"] for r in sorted(recs, key=lambda r: r["hop"]) if r["model_id"] == m] for m in MODELS}
    assert got == expected
    assert got != visit_orders(MODELS, 3, 2, 0)


# ----------------------------------------------------------------------------------------------- the spec option
def test_spec_hop_order_default_follows_determinism_and_is_validated():
    # deterministic runs (the default) must match across independent runs: orders from seed and epoch only
    assert parse_spec(MIN).train.hop_order == "fixed"
    assert parse_spec(with_("train.deterministic", False)).train.hop_order == "cost_aware"
    assert parse_spec(with_("train.hop_order", "cost_aware")).train.hop_order == "cost_aware"
    assert parse_spec(with_("train.hop_order", "fixed")).train.hop_order == "fixed"
    for bad in ("fastest", 3):
        with pytest.raises(SpecError) as exc:
            parse_spec(with_("train.hop_order", bad))
        assert exc.value.field == "train.hop_order"
