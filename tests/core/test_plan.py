import subprocess
import sys

import pytest

from cerebro_ops.core.plan import KINDS, build_plan, step_call
from cerebro_ops.core.spec import parse_spec
from cerebro_ops.core.search import searcher_for


def _spec(epochs=3, method="grid", num_configs=4, batch_size=0):
    space = ({"learning_rate": [0.001, 0.01]} if method == "grid"
             else {"learning_rate": {"loguniform": [0.001, 0.01]}})
    return parse_spec({"name": "t1", "data": {"source": "/tmp/x.parquet", "label": "y", "numeric": ["a"]},
                       "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": method, "num_configs": num_configs, "batch_size": batch_size,
                                  "space": space},
                       "train": {"epochs": epochs}})


def _shape(plan):
    return [(s.task_id, s.kind, s.epoch, s.batch, s.upstream) for s in plan]


@pytest.mark.parametrize("method", ["grid", "random"])
def test_grid_and_random_plan(method):
    assert _shape(build_plan(_spec(3, method))) == [
        ("prepare", "prepare", None, 0, ()),
        ("partition", "partition", None, 0, ("prepare",)),
        ("epoch_1", "epoch", 1, 0, ("partition",)),
        ("epoch_2", "epoch", 2, 0, ("epoch_1",)),
        ("epoch_3", "epoch", 3, 0, ("epoch_2",)),
        ("select", "select", None, 0, ("epoch_3",)),
        ("register", "register", None, 0, ("select",)),
    ]
    assert all(s.group is None and s.name == s.task_id for s in build_plan(_spec(3, method)))


def test_tpe_plan_has_one_group_per_batch_with_next_batch_between():
    spec = _spec(2, "tpe", num_configs=6, batch_size=2)
    assert searcher_for(spec).batch_sizes() == [2, 2, 2]
    assert _shape(build_plan(spec)) == [
        ("prepare", "prepare", None, 0, ()),
        ("partition", "partition", None, 0, ("prepare",)),
        ("batch_1.epoch_1", "epoch", 1, 0, ("partition",)),
        ("batch_1.epoch_2", "epoch", 2, 0, ("batch_1.epoch_1",)),
        ("batch_1.next_batch", "next_batch", None, 0, ("batch_1.epoch_2",)),
        ("batch_2.epoch_1", "epoch", 1, 1, ("batch_1.next_batch",)),
        ("batch_2.epoch_2", "epoch", 2, 1, ("batch_2.epoch_1",)),
        ("batch_2.next_batch", "next_batch", None, 1, ("batch_2.epoch_2",)),
        ("batch_3.epoch_1", "epoch", 1, 2, ("batch_2.next_batch",)),
        ("batch_3.epoch_2", "epoch", 2, 2, ("batch_3.epoch_1",)),
        ("select", "select", None, 0, ("batch_3.epoch_2",)),
        ("register", "register", None, 0, ("select",)),
    ]
    groups = [(s.group, s.name) for s in build_plan(spec) if s.group]
    assert groups[:3] == [("batch_1", "epoch_1"), ("batch_1", "epoch_2"), ("batch_1", "next_batch")]
    assert groups[-1] == ("batch_3", "epoch_2")


@pytest.mark.parametrize("num_configs, batch_size, epochs", [(1, 0, 1), (3, 3, 2), (7, 3, 1), (9, 0, 3),
                                                             (10, 4, 2), (40, 0, 2)])
def test_tpe_plan_counts_follow_the_batches(num_configs, batch_size, epochs):
    spec = _spec(epochs, "tpe", num_configs, batch_size)
    plan = build_plan(spec)
    batches = searcher_for(spec).num_batches
    epoch_steps = [s for s in plan if s.kind == "epoch"]
    assert [(s.batch, s.epoch) for s in epoch_steps] == [(b, e) for b in range(batches)
                                                         for e in range(1, epochs + 1)]
    assert [s.batch for s in plan if s.kind == "next_batch"] == list(range(batches - 1))
    # every next_batch closes its batch: it follows that batch's last epoch, and the next batch follows it
    for i, s in enumerate(plan):
        if s.kind == "next_batch":
            assert (plan[i - 1].batch, plan[i - 1].epoch) == (s.batch, epochs)
            assert (plan[i + 1].batch, plan[i + 1].epoch) == (s.batch + 1, 1)
    assert [s.kind for s in plan[:2] + plan[-2:]] == ["prepare", "partition", "select", "register"]


@pytest.mark.parametrize("spec", [_spec(3), _spec(4, "tpe", 9), _spec(1, "tpe", 2)])
def test_every_plan_is_a_chain_of_unique_known_steps(spec):
    plan = build_plan(spec)
    assert plan[0].upstream == ()
    for prev, step in zip(plan, plan[1:]):
        assert step.upstream == (prev.task_id,)
    assert len({s.task_id for s in plan}) == len(plan)
    assert {s.kind for s in plan} <= set(KINDS)
    assert all((s.kind == "epoch") == (s.epoch is not None) for s in plan)


@pytest.mark.parametrize("spec", [_spec(2), _spec(2, "tpe", 4)])
def test_each_step_names_its_study_function_and_arguments(spec):
    from cerebro_ops import study

    calls = [step_call(s) for s in build_plan(spec)]
    assert all(callable(getattr(study, name)) for name, _ in calls)
    assert [c for c in calls if c[0] == "run_epoch"][:2] == [("run_epoch", (1, 0)), ("run_epoch", (2, 0))]
    assert {name for name, _ in calls} == {"prepare", "partition", "run_epoch", "select", "register"} | (
        {"next_batch"} if spec.search.method == "tpe" else set())


def test_plan_module_is_pure():
    code = ("import sys, cerebro_ops.core.plan, cerebro_ops.core.params; "
            "bad = [m for m in ('airflow', 'pyspark', 'tensorflow', 'optuna') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__file__.rsplit("/tests/", 1)[0])
