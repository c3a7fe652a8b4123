"""Grid and seeded random search: values, bounds, independence of parameter streams."""
from hypothesis import given, settings
from hypothesis import strategies as st

from cerebro_ops.core.search import searcher_for
from cerebro_ops.core.search.grid import grid_configs
from cerebro_ops.core.search.random_search import random_configs
from cerebro_ops.core.spec import parse_param, parse_spec


def test_grid_is_the_cartesian_product():
    space = (parse_param("a", [1, 2]), parse_param("b", {"int": [3, 5]}))
    assert grid_configs(space) == [{"a": a, "b": b} for a in (1, 2) for b in (3, 4, 5)]


def test_random_is_seeded_and_independent_per_parameter():
    a = parse_param("lr", {"loguniform": [1e-4, 1e-1]})
    b = parse_param("bs", {"choice": [16, 32, 64]})
    c = parse_param("drop", {"uniform": [0.0, 0.5]})
    one = random_configs((a, b), 20, 7)
    assert one == random_configs((a, b), 20, 7)
    assert one != random_configs((a, b), 20, 8)
    # adding a parameter does not change what the others draw (the original shared one stream)
    two = random_configs((a, b, c), 20, 7)
    assert [{k: r[k] for k in ("lr", "bs")} for r in two] == one


@settings(max_examples=100, deadline=None)
@given(low=st.floats(1e-6, 10), span=st.floats(1.01, 1000), seed=st.integers(0, 10**6))
def test_samples_stay_in_bounds(low, span, seed):
    high = low * span
    params = (parse_param("u", {"uniform": [low, high]}), parse_param("l", {"loguniform": [low, high]}),
              parse_param("q", {"quniform": [low, high, (high - low) / 4]}),
              parse_param("ql", {"qloguniform": [low, high, (high - low) / 4]}),
              parse_param("i", {"int": [1, 9]}))
    for cfg in random_configs(params, 10, seed):
        for k in ("u", "l", "q", "ql"):
            assert low - 1e-9 <= cfg[k] <= high + 1e-9, (k, cfg[k])
        assert 1 <= cfg["i"] <= 9 and isinstance(cfg["i"], int)


def test_loguniform_is_uniform_in_log_space():
    p = parse_param("lr", {"loguniform": [1e-4, 1.0]})
    vals = [c["lr"] for c in random_configs((p,), 4000, 1)]
    below = sum(v < 1e-2 for v in vals) / len(vals)
    assert abs(below - 0.5) < 0.04  # half the log-range lies below 1e-2


def test_random_first_batch_ids_and_count():
    spec = parse_spec({"name": "t", "data": {"source": "/x.csv", "label": "y", "numeric": ["a"]},
                       "model": {"builder": "m:f"},
                       "search": {"method": "random", "num_configs": 5,
                                  "space": {"lr": {"uniform": [0.1, 0.2]}}}})
    cfgs = searcher_for(spec).first_batch()
    assert [c.model_id for c in cfgs] == ["m000", "m001", "m002", "m003", "m004"]
    assert all(0.1 <= c.params["lr"] <= 0.2 for c in cfgs)
