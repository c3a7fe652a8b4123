"""TPE through Optuna ask-and-tell: batches, determinism, improvement. No Spark/TF."""
import math

import pytest

from cerebro_ops.core.search import searcher_for
from cerebro_ops.core.search.batches import next_configs, told_results
from cerebro_ops.core.spec import parse_spec


def spec(space=None, seed=5, direction="min", **search):
    s = {"method": "tpe", "num_configs": 7, "space": space or {"learning_rate": {"loguniform": [1e-4, 1e-1]},
                                                               "batch_size": [32, 64]}}
    s.update(search)
    return parse_spec({"name": "t", "seed": seed, "data": {"source": "x.csv", "label": "y", "numeric": ["a"]},
                       "model": {"builder": "m:f"}, "search": s, "train": {"direction": direction}})


def run(objective, space: dict, num_configs: int, batch: int, seed: int, direction: str = "min") -> list:
    """Every batch of a TPE search, each config evaluated by `objective` and told before the next batch."""
    searcher = searcher_for(spec(space, seed, direction, num_configs=num_configs, batch_size=batch))
    history: list = []
    for b in range(searcher.num_batches):
        history += [(p, objective(p)) for p in searcher.ask(b, history)]
    return history


SPACE = {"x": {"uniform": [-5.0, 5.0]}, "lr": {"loguniform": [1e-4, 1.0]}, "bs": {"quniform": [16, 256, 16]},
         "q": {"qloguniform": [1e-3, 1.0, 1e-3]}, "opt": ["adam", "sgd"], "shape": {"choice": [[8, 8], [16]]},
         "layers": {"int": [1, 4]}}


def objective(p):
    return (p["x"] - 1.0) ** 2 + (0.0 if p["opt"] == "adam" else 3.0) + abs(math.log10(p["lr"]) + 2)


def test_values_are_in_range_and_typed():
    hist = run(objective, SPACE, 12, 4, seed=3)
    for p, _ in hist:
        assert -5 <= p["x"] <= 5 and 1e-4 <= p["lr"] <= 1.0
        assert isinstance(p["bs"], int) and p["bs"] % 16 == 0 and 16 <= p["bs"] <= 256
        assert 1e-3 - 1e-12 <= p["q"] <= 1.0 and abs(p["q"] / 1e-3 - round(p["q"] / 1e-3)) < 1e-6
        assert p["opt"] in ("adam", "sgd") and p["shape"] in ([8, 8], [16])
        assert p["layers"] in (1, 2, 3, 4) and isinstance(p["layers"], int)


def test_batches_cover_num_configs_and_are_seeded():
    a = run(objective, SPACE, 10, 4, seed=7)
    b = run(objective, SPACE, 10, 4, seed=7)
    c = run(objective, SPACE, 10, 4, seed=8)
    assert len(a) == 10
    assert a == b
    assert a != c


def test_tpe_improves_on_random_start():
    space = {"x": {"uniform": [-10.0, 10.0]}, "y": {"uniform": [-10.0, 10.0]}}

    def f(p):
        return (p["x"] - 3) ** 2 + (p["y"] + 2) ** 2

    hist = run(f, space, 40, 8, seed=0)
    first = [v for _, v in hist[:8]]
    later = [v for _, v in hist[24:]]
    assert sorted(later)[len(later) // 2] < sorted(first)[len(first) // 2]  # later medians are better
    assert min(v for _, v in hist) < min(first)


def test_failed_configs_are_told_as_failures_not_as_values():
    space = {"x": {"uniform": [0.0, 1.0]}}
    hist = run(lambda p: None if p["x"] > 0.5 else p["x"], space, 9, 3, seed=1)
    told, failed = hist[:6], [p for p, v in hist[:6] if v is None]
    assert len(failed) == 2 and all(p["x"] > 0.5 for p in failed)
    searcher = searcher_for(spec(space, seed=1, num_configs=9, batch_size=3))
    asked = searcher.ask(2, told)
    # a failure is no observation: asking without the failed configs asks the same batch ...
    assert asked == searcher.ask(2, [(p, v) for p, v in told if v is not None])
    # ... and NaN is a failure too, while a (bad) value is an observation that changes the batch
    assert asked == searcher.ask(2, [(p, math.nan if v is None else v) for p, v in told])
    assert asked != searcher.ask(2, [(p, 10.0 if v is None else v) for p, v in told])


def test_maximise_direction():
    space = {"x": {"uniform": [0.0, 10.0]}}
    hist = run(lambda p: p["x"], space, 30, 6, seed=2, direction="max")
    assert sum(p["x"] for p, _ in hist[18:]) / 12 > sum(p["x"] for p, _ in hist[:6]) / 6


@pytest.mark.parametrize("n,b,sizes", [(7, 0, [2, 2, 2, 1]), (7, 3, [3, 3, 1]), (9, 0, [3, 3, 3]),
                                       (1, 0, [1]), (4, 10, [4])])
def test_batch_sizes(n, b, sizes):
    assert searcher_for(spec(num_configs=n, batch_size=b)).batch_sizes() == sizes


def test_first_batch_is_seeded():
    s = spec(batch_size=3)
    a, b = searcher_for(s).first_batch(), searcher_for(s).first_batch()
    assert [c.model_id for c in a] == ["m000", "m001", "m002"]
    assert a == b


# --------------------------------------------------------------------------------------------- a study's batches
# A TPE study (8 configs in batches of 3, 3 epochs) with fake workers whose validation loss is a function of
# the config (tests/offline_study.py). The expected configs are those the CLI asked before the batches were
# steps of the plan (same seed, same results told), so the steps ask exactly what the CLI asked.

EXPECTED = {"m000": (0.05839763158469752, 9), "m001": (0.011691645471677722, 14), "m002": (0.0018499360229448536, 8),
            "m003": (0.09569852221336936, 6), "m004": (0.0015020632003534878, 8), "m005": (0.009522673931121774, 14),
            "m006": (0.08846932008105848, 2), "m007": (0.00011161365928164859, 1)}
EXPECTED_BATCHES = [["m000", "m001", "m002"], ["m003", "m004", "m005"], ["m006", "m007"]]
# Optuna's samples go through libm (exp/log), whose last bit differs between CPUs (AVX-512 or not): compare
# within the project's reproducibility promise, 1e-6, not bit for bit.
REL = 1e-6


def assert_configs(got: dict, want: dict) -> None:
    """{model: (learning_rate, units)}: the same models, units equal, learning rates within REL."""
    assert list(got) == list(want), (list(got), list(want))
    for m, (lr, units) in want.items():
        assert got[m][1] == units, (m, got[m], (lr, units))
        assert got[m][0] == pytest.approx(lr, rel=REL), (m, got[m], (lr, units))


@pytest.fixture
def offline(monkeypatch):
    from tests.offline_study import go_offline
    return go_offline(monkeypatch)


def tpe_study(tmp_path, **kw):
    from tests.offline_study import raw_spec
    return parse_spec(raw_spec(tmp_path, **kw))


def summary(spec, run_id):
    from cerebro_ops import study

    state = study.load_run(spec, run_id)
    return ({m: (r.params, r.status, [(e.epoch, e.metrics) for e in r.history]) for m, r in state.models.items()},
            state.tpe.batches)


def test_cli_run_asks_the_recorded_batches(tmp_path, offline):
    from cerebro_ops import study
    from cerebro_ops.core.run_state import ModelStatus

    from tests.offline_study import scoring_launcher

    spec = tpe_study(tmp_path)
    res = study.run(spec, run_id="r", launcher=scoring_launcher(2), register_model=False)
    state = study.load_run(spec, "r")
    assert state.tpe.batches == EXPECTED_BATCHES and state.tpe.sizes == [3, 3, 2]
    assert_configs({m: (r.params["learning_rate"], r.params["units"]) for m, r in state.models.items()}, EXPECTED)
    assert state.with_status(ModelStatus.FAILED) == ["m000", "m003", "m006"]  # learning_rate > 0.05
    assert state.with_status(ModelStatus.FINISHED) == ["m001", "m002", "m004", "m005", "m007"]
    assert all(len(r.history) == 3 for r in state.models.values() if r.status is ModelStatus.FINISHED)
    top = res["leaderboard"][0]
    assert (top["model_id"], top["best_epoch"]) == ("m005", 3)
    assert top["val_loss"] == pytest.approx(0.46330832660135046, rel=REL)
    # every config has its MLflow child run, opened when its batch was asked and ended once
    calls = offline["tracker"]
    assert [c[1] for c in calls if c[0] == "start_config"] == sorted(EXPECTED)
    ended = [c[1] for c in calls if c[0] == "end_config"]
    assert sorted(ended) == sorted(f"{m}-run" for m in EXPECTED)


def test_steps_one_by_one_equal_the_cli_run(tmp_path, offline):
    """The Airflow DAG runs every step as its own task: the same study as the CLI's study.run."""
    from cerebro_ops import study

    from tests.offline_study import scoring_launcher, walk_steps

    spec = tpe_study(tmp_path)
    results = walk_steps(spec, "dag", scoring_launcher(2))
    study.run(spec, run_id="cli", launcher=scoring_launcher(2), register_model=False)
    assert summary(spec, "dag") == summary(spec, "cli")
    assert [(r.get("epoch"), r["batch"]) for r in results] == [
        (1, 0), (2, 0), (3, 0), (None, 0), (1, 1), (2, 1), (3, 1), (None, 1), (1, 2), (2, 2), (3, 2)]
    assert results[3]["models"] == EXPECTED_BATCHES[1] and results[7]["models"] == EXPECTED_BATCHES[2]
    assert not any("skipped" in r for r in results)


def test_later_batch_depends_on_the_told_results(tmp_path, offline):
    from cerebro_ops import study

    from tests.offline_study import scoring_launcher, walk_steps

    spec = tpe_study(tmp_path)
    walk_steps(spec, "r", scoring_launcher(2), until=lambda s: (s.kind, s.batch) == ("next_batch", 1))
    state = study.load_run(spec, "r")
    asked = [c.params for c in next_configs(searcher_for(spec), state, 2)]
    assert_configs(dict(zip(EXPECTED_BATCHES[2], [(p["learning_rate"], p["units"]) for p in asked])),
                   {m: EXPECTED[m] for m in EXPECTED_BATCHES[2]})
    assert [c.model_id for c in next_configs(searcher_for(spec), state, 2)] == EXPECTED_BATCHES[2]
    told = told_results(state, spec.train.metric, spec.train.direction)
    assert [m for m, (_, v) in zip(sorted(state.models), told) if v is None] == ["m000", "m003"]  # failed
    assert told[1][1] == min(e.value("val_loss") for e in state.models["m001"].history)  # its best epoch
    # Batches 1 and 2 told 4 results, more than TPE's start-up (3): batch 3 is TPE's proposal from them.
    # One told value changes, and so do the proposals.
    state.models["m004"].history[-1].metrics["val_loss"] = 0.01
    assert [c.params for c in next_configs(searcher_for(spec), state, 2)] != asked


def test_resume_in_the_middle_of_a_batch(tmp_path, offline):
    """Stopped after epoch 1 of batch 2 (1-based), `run` resumes: same configs and metrics, no epoch retrained."""
    from cerebro_ops import study

    from tests.offline_study import scoring_launcher, walk_steps

    spec = tpe_study(tmp_path)
    walk_steps(spec, "r", scoring_launcher(2), until=lambda s: (s.batch, s.epoch) == (1, 2))
    state = study.load_run(spec, "r")
    assert (state.current_batch, state.epochs_done, len(state.models)) == (1, 1, 6)
    seen: list = []
    study.run(spec, run_id="r", launcher=scoring_launcher(2, seen), register_model=False)
    study.run(spec, run_id="ref", launcher=scoring_launcher(2), register_model=False)
    assert summary(spec, "r") == summary(spec, "ref")
    # epochs 2-3 of batch 2 (m003 failed in epoch 1), then batch 3; nothing of batch 1 again
    assert {m for _, m, kind, _ in seen if kind == "train"} == {"m004", "m005", "m006", "m007"}


def test_steps_beyond_the_run_are_no_ops(tmp_path, offline):
    """A trigger with fewer epochs and configs than the DAG's plan: the extra steps do nothing."""
    from cerebro_ops import study

    from tests.offline_study import scoring_launcher, walk_steps

    spec = tpe_study(tmp_path)  # the DAG: 3 batches of 3 epochs
    study.prepare(spec, "r", overrides={"epochs": 2, "num_configs": 5})
    results = walk_steps(spec, "r", scoring_launcher(2), plan_spec=spec)
    assert [r.get("skipped") for r in results] == [
        None, None, "beyond run epochs", None, None, None, "beyond run epochs",
        "no later batch", "beyond run batches", "beyond run batches", "beyond run batches"]
    state = study.load_run(spec, "r")  # this run: batches of 3 + 2, 2 epochs each
    assert state.tpe.batches == [["m000", "m001", "m002"], ["m003", "m004"]] and state.tpe.sizes == [3, 2]
    assert state.epochs == 2 and state.selected is not None
    assert all(len(r.history) == 2 for r in state.models.values() if r.history)


def test_next_batch_is_idempotent_and_steps_keep_their_order(tmp_path, offline):
    from cerebro_ops import study
    from cerebro_ops.core.errors import DataError

    from tests.offline_study import scoring_launcher

    spec = tpe_study(tmp_path)
    study.prepare(spec, "r")
    study.partition(spec, "r")
    with pytest.raises(DataError, match="batch 0 is not trained"):
        study.next_batch(spec, "r", 0)
    with pytest.raises(DataError) as err:
        study.run_epoch(spec, "r", 1, batch=1, launcher=scoring_launcher(2))
    assert err.value.field == "batch"
    for e in (1, 2, 3):
        study.run_epoch(spec, "r", e, 0, launcher=scoring_launcher(2))
    with pytest.raises(DataError, match="TPE batches"):
        study.select(spec, "r")
    first = study.next_batch(spec, "r", 0)
    starts = [c for c in offline["tracker"] if c[0] == "start_config"]
    again = study.next_batch(spec, "r", 0)
    assert first["models"] == EXPECTED_BATCHES[1] and again["skipped"] == "already done"
    assert [c for c in offline["tracker"] if c[0] == "start_config"] == starts  # no second child run
    assert study.run_epoch(spec, "r", 3, 0)["skipped"] == "already done"
    assert len(study.load_run(spec, "r").models) == 6
