"""TPE through Optuna ask-and-tell: distribution mapping, batches, determinism, improvement. No Spark/TF."""
import math

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from cerebro_ops import tpe
from cerebro_ops.search import sample_configs
from cerebro_ops.spec import parse_param, parse_spec


def P(name, v):
    return parse_param(name, v)


def test_distributions_map_correctly():
    d = tpe.to_distribution
    assert d(P("a", [1, "x", True])) == CategoricalDistribution([1, "x", True])
    assert d(P("a", {"choice": [[1, 2], [3]]})) == CategoricalDistribution([0, 1])  # lists by index
    assert d(P("a", {"uniform": [0.1, 0.5]})) == FloatDistribution(0.1, 0.5)
    assert d(P("a", {"loguniform": [1e-4, 1e-2]})) == FloatDistribution(1e-4, 1e-2, log=True)
    assert d(P("a", {"quniform": [16, 256, 16]})) == IntDistribution(16, 256, step=16)
    assert d(P("a", {"quniform": [0.0, 1.0, 0.25]})) == FloatDistribution(0.0, 1.0, step=0.25)
    assert d(P("a", {"quniform": [0, 10, 3]})) == IntDistribution(0, 9, step=3)  # high on the grid
    assert d(P("a", {"qloguniform": [1, 1024, 1]})) == IntDistribution(1, 1024, log=True)
    assert d(P("a", {"qloguniform": [1e-3, 1.0, 1e-3]})) == FloatDistribution(1e-3, 1.0, log=True)
    assert d(P("a", {"int": [1, 4]})) == IntDistribution(1, 4)


SPACE = (P("x", {"uniform": [-5.0, 5.0]}), P("lr", {"loguniform": [1e-4, 1.0]}),
         P("bs", {"quniform": [16, 256, 16]}), P("q", {"qloguniform": [1e-3, 1.0, 1e-3]}),
         P("opt", ["adam", "sgd"]), P("shape", {"choice": [[8, 8], [16]]}), P("layers", {"int": [1, 4]}))


def objective(p):
    return (p["x"] - 1.0) ** 2 + (0.0 if p["opt"] == "adam" else 3.0) + abs(math.log10(p["lr"]) + 2)


def test_values_are_in_range_and_typed():
    hist = tpe.run_tpe(objective, SPACE, 12, 4, seed=3)
    for p, _ in hist:
        assert -5 <= p["x"] <= 5 and 1e-4 <= p["lr"] <= 1.0
        assert isinstance(p["bs"], int) and p["bs"] % 16 == 0 and 16 <= p["bs"] <= 256
        assert 1e-3 - 1e-12 <= p["q"] <= 1.0 and abs(p["q"] / 1e-3 - round(p["q"] / 1e-3)) < 1e-6
        assert p["opt"] in ("adam", "sgd") and p["shape"] in ([8, 8], [16])
        assert p["layers"] in (1, 2, 3, 4) and isinstance(p["layers"], int)


def test_batches_cover_num_configs_and_are_seeded():
    a = tpe.run_tpe(objective, SPACE, 10, 4, seed=7)
    b = tpe.run_tpe(objective, SPACE, 10, 4, seed=7)
    c = tpe.run_tpe(objective, SPACE, 10, 4, seed=8)
    assert len(a) == 10
    assert a == b
    assert a != c


def test_tpe_improves_on_random_start():
    space = (P("x", {"uniform": [-10.0, 10.0]}), P("y", {"uniform": [-10.0, 10.0]}))

    def f(p):
        return (p["x"] - 3) ** 2 + (p["y"] + 2) ** 2

    hist = tpe.run_tpe(f, space, 40, 8, seed=0)
    first = [v for _, v in hist[:8]]
    later = [v for _, v in hist[24:]]
    assert sorted(later)[len(later) // 2] < sorted(first)[len(first) // 2]  # later medians are better
    assert min(v for _, v in hist) < min(first)


def test_failed_configs_are_told_as_failures():
    space = (P("x", {"uniform": [0.0, 1.0]}),)
    hist = tpe.run_tpe(lambda p: None if p["x"] > 0.5 else p["x"], space, 9, 3, seed=1)
    assert len(hist) == 9


def test_maximise_direction():
    space = (P("x", {"uniform": [0.0, 10.0]}),)
    hist = tpe.run_tpe(lambda p: p["x"], space, 30, 6, seed=2, direction="max")
    assert sum(p["x"] for p, _ in hist[18:]) / 12 > sum(p["x"] for p, _ in hist[:6]) / 6


def spec(**search):
    s = {"method": "tpe", "num_configs": 7, "space": {"learning_rate": {"loguniform": [1e-4, 1e-1]},
                                                      "batch_size": [32, 64]}}
    s.update(search)
    return parse_spec({"name": "t", "seed": 5, "data": {"source": "x.csv", "label": "y", "numeric": ["a"]},
                       "model": {"builder": "m:f"}, "search": s})


@pytest.mark.parametrize("n,b,sizes", [(7, 0, [2, 2, 2, 1]), (7, 3, [3, 3, 1]), (9, 0, [3, 3, 3]),
                                       (1, 0, [1]), (4, 10, [4])])
def test_batch_sizes(n, b, sizes):
    assert tpe.batch_sizes(spec(num_configs=n, batch_size=b)) == sizes


def test_sample_configs_returns_the_seeded_first_batch():
    s = spec(batch_size=3)
    a, b = sample_configs(s), sample_configs(s)
    assert [c.model_id for c in a] == ["m000", "m001", "m002"]
    assert a == b
