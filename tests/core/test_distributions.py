"""The distributions table: Optuna mapping, samples within bounds, values TPE can be told back."""
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from cerebro_ops.core.distributions import DISTRIBUTIONS, Param, distribution
from cerebro_ops.core.errors import SpecError
from cerebro_ops.core.spec import parse_param


def P(name, v):
    return parse_param(name, v)


def test_distributions_map_correctly():
    def d(p):
        return distribution(p).to_optuna()

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


def test_every_kind_is_known_to_the_spec_and_unknown_kinds_are_refused():
    examples = {"choice": [1, 2], "uniform": [0.1, 0.5], "quniform": [0, 8, 2], "loguniform": [1e-3, 1.0],
                "qloguniform": [1, 64, 1], "int": [1, 3]}
    assert list(DISTRIBUTIONS) == list(examples)
    for kind, args in examples.items():
        d = distribution(P("a", {kind: args}))
        assert d.kind == kind and type(d) is DISTRIBUTIONS[kind]
    with pytest.raises(SpecError, match="unknown distribution 'beta'"):
        distribution(Param("a", "beta", (1, 2)))
    with pytest.raises(SpecError, match="needs low > 0"):
        P("a", {"qloguniform": [0, 4, 1]})  # a log kind: spec.py asks the class


@st.composite
def numeric_params(draw):
    """A numeric search-space entry of any kind whose bounds are multiples of q, a step as written in specs."""
    kind = draw(st.sampled_from(["uniform", "loguniform", "quniform", "qloguniform", "int"]))
    if kind == "int":
        low = draw(st.integers(-1000, 1000))
        return P("p", {kind: [low, low + draw(st.integers(1, 1000))]})
    integer = draw(st.booleans())
    q = draw(st.integers(1, 50)) if integer else draw(st.sampled_from([1e-3, 0.01, 0.05, 0.1, 0.25, 2.5]))
    low = round(q * draw(st.integers(1 if kind.startswith(("log", "qlog")) else -100, 100)), 9)
    high = round(low + q * draw(st.integers(1, 100)), 9)
    return P("p", {kind: [low, high, q] if kind.startswith("q") else [low, high]})


@settings(max_examples=200, deadline=None)
@given(p=numeric_params(), seed=st.integers(0, 10**6))
def test_samples_are_in_bounds_on_the_grid_and_in_optunas_distribution(p, seed):
    d = distribution(p)
    optuna_dist = d.to_optuna()
    rng = random.Random(seed)
    for _ in range(10):
        v = d.sample(rng)
        low, high = p.args[0], p.args[1]
        assert low - 1e-9 <= v <= high + 1e-9, (p, v)
        if p.kind.startswith("q"):
            q = p.args[2]
            assert abs(v / q - round(v / q)) < 1e-6, (p, v)
        if p.kind == "int":
            assert isinstance(v, int)
        # what random search samples TPE can be told, and reads back as the same value
        assert optuna_dist._contains(optuna_dist.to_internal_repr(d.encode(v))), (p, v, optuna_dist)
        assert d.decode(d.encode(v)) == v


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none(),
                                 st.lists(st.integers(1, 9), min_size=1, max_size=3)), min_size=1, max_size=6),
       seed=st.integers(0, 10**6))
def test_choice_samples_one_of_its_values_and_round_trips_through_optuna(values, seed):
    d = distribution(P("c", {"choice": values}))
    rng = random.Random(seed)
    for _ in range(10):
        v = d.sample(rng)
        assert v in values
        assert d.decode(d.encode(v)) == v
    assert d.grid() == values


@pytest.mark.parametrize("args", [[0.1, 1.0, 0.3], [1, 10, 3], [-0.35, 0.5, 0.2]])
def test_quniform_with_a_low_off_the_q_grid_can_be_told_to_tpe(args):
    """Values are multiples of q; Optuna's stepped distribution starts at the first one, not at low."""
    d = distribution(P("a", {"quniform": args}))
    rng = random.Random(0)
    values = {d.sample(rng) for _ in range(200)}
    low, high, q = args
    assert all(low - 1e-9 <= v <= high + 1e-9 and abs(v / q - round(v / q)) < 1e-9 for v in values), values
    assert all(d.to_optuna()._contains(d.encode(v)) for v in values), (values, d.to_optuna())
    assert d.decode(d.encode(max(values))) == max(values)
