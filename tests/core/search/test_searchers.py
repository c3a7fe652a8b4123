"""The Searcher interface: every registered method satisfies it; asking is a pure function of the history."""
import dataclasses
import subprocess
import sys

import pytest

from cerebro_ops.core import spec as spec_module
from cerebro_ops.core.distributions import distribution
from cerebro_ops.core.errors import SpecError
from cerebro_ops.core.plan import build_plan
from cerebro_ops.core.search import SEARCHERS, OneBatchSearch, Searcher, TpeSearch, searcher_for
from cerebro_ops.core.spec import METHODS, parse_spec

SPACE = {"lr": {"loguniform": [1e-4, 1e-1]}, "units": {"int": [4, 6]}, "opt": ["adam", "sgd"],
         "drop": {"quniform": [0.0, 0.5, 0.25]}}
GRID_SPACE = {"units": {"int": [4, 6]}, "opt": ["adam", "sgd"], "shape": {"choice": [[8, 8], [16]]}}


def make_spec(method, seed=3, **search):
    space = GRID_SPACE if method == "grid" else SPACE
    return parse_spec({"name": "t", "seed": seed, "data": {"source": "x.csv", "label": "y", "numeric": ["a"]},
                       "model": {"builder": "m:f"},
                       "search": {"method": method, "num_configs": 7, "batch_size": 3, "space": space, **search}})


def score(params: dict) -> float | None:
    return None if params["units"] == 5 else params["units"] * 0.1 + (0.0 if params["opt"] == "adam" else 1.0)


def ask_all(searcher: Searcher) -> list[tuple[dict, float | None]]:
    history: list = []
    for b in range(searcher.num_batches):
        history += [(p, score(p)) for p in searcher.ask(b, history)]
    return history


@pytest.mark.parametrize("method", list(SEARCHERS))
def test_every_registered_method_satisfies_the_interface(method):
    cls = SEARCHERS[method]
    assert issubclass(cls, Searcher) and cls.method == method
    spec = make_spec(method)
    s = searcher_for(spec)
    assert type(s) is cls and s.spec is spec and isinstance(cls.is_adaptive, bool)
    sizes = s.batch_sizes()
    assert sizes and all(isinstance(n, int) and n > 0 for n in sizes)
    assert (s.num_batches, s.total_configs) == (len(sizes), sum(sizes))
    assert s.num_batches == 1 or s.is_adaptive  # only an adaptive search plans several batches
    first = s.first_batch()
    assert [c.model_id for c in first] == [f"m{i:03d}" for i in range(sizes[0])]
    assert [c.params for c in first] == s.ask(0)
    history = ask_all(s)
    assert len(history) == s.total_configs
    dists = {p.name: distribution(p) for p in spec.search.space}
    for params, _ in history:
        assert set(params) == set(dists)
        for name, value in params.items():
            d = dists[name]
            assert value in d.grid() if d.discrete else d.low <= value <= d.high


@pytest.mark.parametrize("method", list(SEARCHERS))
def test_asking_depends_only_on_spec_batch_and_history(method):
    """No state between calls: a fresh searcher (a resumed run) asks what the first one asked."""
    a, b = searcher_for(make_spec(method)), searcher_for(make_spec(method))
    history = ask_all(a)
    assert ask_all(b) == history
    last = a.num_batches - 1
    told = history[:sum(a.batch_sizes()[:last])]
    b.ask(0)  # asking something else first changes nothing
    assert b.ask(last, told) == a.ask(last, told) == [p for p, _ in history[len(told):]]
    other = searcher_for(make_spec(method, seed=4))
    assert ask_all(other) != history or method == "grid"  # grid ignores the seed


@pytest.mark.parametrize("method", [m for m, c in SEARCHERS.items() if not c.is_adaptive])
def test_one_batch_searches_ignore_the_history_and_have_no_later_batch(method):
    s = searcher_for(make_spec(method))
    assert isinstance(s, OneBatchSearch) and s.num_batches == 1
    assert s.ask(0, [({"units": 4, "opt": "adam"}, 0.1)]) == s.ask(0)
    with pytest.raises(ValueError, match="one batch"):
        s.ask(1)


def test_told_results_change_the_next_tpe_batch():
    s = searcher_for(make_spec("tpe", num_configs=9))
    history = ask_all(s)
    told = history[:6]
    changed = [(p, 100.0 if v is not None else None) for p, v in told]
    assert s.ask(2, told) != s.ask(2, changed)


def test_every_method_of_the_spec_has_its_searcher():
    assert tuple(SEARCHERS) == METHODS


def test_unknown_method_is_refused_by_spec_and_factory():
    with pytest.raises(SpecError, match="use one of grid, random, tpe"):
        make_spec("bayes")
    spec = make_spec("random")
    spec = dataclasses.replace(spec, search=dataclasses.replace(spec.search, method="bayes"))
    with pytest.raises(SpecError, match="'bayes' is not a search method"):
        searcher_for(spec)


def test_a_registered_searcher_shapes_the_plan(monkeypatch):
    """plan.py asks the searcher: a new adaptive method gets a group of epochs per batch, without a new branch."""
    class Halving(TpeSearch):
        method = "halving"

        def batch_sizes(self) -> list[int]:
            return [4, 2, 1]

    monkeypatch.setitem(SEARCHERS, "halving", Halving)
    monkeypatch.setattr(spec_module, "METHODS", METHODS + ("halving",))
    spec = make_spec("halving")
    groups = [s.group for s in build_plan(spec) if s.kind == "epoch"]
    assert groups == ["batch_1"] * 3 + ["batch_2"] * 3 + ["batch_3"] * 3
    assert sum(s.kind == "next_batch" for s in build_plan(spec)) == 2


def test_search_imports_neither_the_epoch_engine_nor_optuna():
    code = ("import sys, cerebro_ops.core.search, cerebro_ops.core.search.batches; "
            "bad = [m for m in sys.modules if m.startswith(('cerebro_ops.mop', 'optuna'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__file__.rsplit("/tests/", 1)[0])
