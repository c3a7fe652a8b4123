from cerebro_ops.plan import KINDS, Step, build_plan
from cerebro_ops.spec import parse_spec


def _spec(epochs=3):
    return parse_spec({"name": "t1", "data": {"source": "/tmp/x.parquet", "label": "y", "numeric": ["a"]},
                       "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "grid", "space": {"learning_rate": [0.001, 0.01]}},
                       "train": {"epochs": epochs}})


def test_order_and_kinds():
    plan = build_plan(_spec(3))
    assert [s.task_id for s in plan] == ["prepare", "partition", "epoch_1", "epoch_2", "epoch_3", "select",
                                         "register"]
    assert [s.kind for s in plan] == ["prepare", "partition", "epoch", "epoch", "epoch", "select", "register"]
    assert all(s.kind in KINDS for s in plan)
    assert [s.epoch for s in plan] == [None, None, 1, 2, 3, None, None]


def test_upstreams_form_a_chain():
    plan = build_plan(_spec(3))
    assert plan[0].upstream == ()
    for prev, step in zip(plan, plan[1:]):
        assert step.upstream == (prev.task_id,)
    ids = [s.task_id for s in plan]
    assert len(set(ids)) == len(ids)


def test_epoch_count_follows_spec():
    for n in (1, 5, 12):
        plan = build_plan(_spec(n))
        assert sum(s.kind == "epoch" for s in plan) == n
        assert plan[-3].task_id == f"epoch_{n}"
        assert len(plan) == n + 4


def test_step_is_frozen():
    s = Step("prepare", "prepare", None, ())
    try:
        s.task_id = "x"
    except AttributeError:
        pass
    else:
        raise AssertionError("Step must be frozen")


def test_plan_module_is_pure():
    import subprocess
    import sys
    code = ("import sys, cerebro_ops.plan, cerebro_ops.params; "
            "bad = [m for m in ('airflow', 'pyspark', 'tensorflow') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__file__.rsplit("/tests/", 1)[0])
