"""HopTrainer, checkpoint state, builder checks and built-in builders, against real TensorFlow (small data)."""
from __future__ import annotations

import io

import keras
import numpy as np
import pytest

from cerebro_ops.builders import cnn, mlp
from cerebro_ops.core.errors import ConfigFailed, DataError, SpecError, StoreError
from cerebro_ops.keras.train_loop import row_order
from cerebro_ops.keras.trainer import (DataInfo, HopTrainer, check_builder, data_info, dump_checkpoint, import_builder,
                                 load_checkpoint)
from tests import builders_for_tests as tb

TINY = "tests.builders_for_tests:tiny"
INFO = DataInfo(input_shape=(4,), task="binary", num_classes=2)
# Dropout on purpose: its RNG (SeedGenerator state) must travel with the checkpoint too.
PARAMS = {"units": 8, "dropout": 0.25, "batch_size": 32, "learning_rate": 1e-2}


def _data(n: int, seed: int, d: int = 4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("float32")
    return x, y


PARTS = [_data(100, 1), _data(90, 2)]  # two worker partitions, unequal sizes (partial last batch)
# MOP visit sequence over 2 epochs: (partition, hop seed, which worker runs it).
HOPS = [(0, 11, "A"), (1, 12, "B"), (1, 13, "A"), (0, 14, "B")]


def _arrays(state: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(state)) as z:
        return {k: z[k] for k in z.files}


def _max_diff(a: dict, b: dict, prefix: str = "") -> float:
    keys = [k for k in a if k.startswith(prefix)]
    assert sorted(keys) == sorted(k for k in b if k.startswith(prefix))
    return max(float(np.max(np.abs(a[k].astype("float64") - b[k].astype("float64")))) for k in keys)


@pytest.fixture(scope="module")
def trainers():
    return HopTrainer(INFO), HopTrainer(INFO)  # two "workers", each with its own model cache


def _keras_sub_epoch(model, x, y, seed: int, batch_size: int) -> None:
    """Plain Keras: train_on_batch over the batches of x in the hop's order (a permutation from its seed)."""
    order = row_order(len(x), seed)
    for i in range(0, len(x), batch_size):
        rows = order[i:i + batch_size]
        model.train_on_batch(x[rows], y[rows])


def _sequential(params: dict, init_seed: int = 5, hops=HOPS) -> dict[str, np.ndarray]:
    """One plain Keras model object, trained hop after hop (no checkpoints) on the same data sequence."""
    keras.utils.set_random_seed(init_seed)
    model = tb.tiny(params, INFO)
    for part, seed, _ in hops:
        _keras_sub_epoch(model, *PARTS[part], seed, params["batch_size"])
    return _arrays(dump_checkpoint(model))


@pytest.fixture(scope="module")
def reference_state():
    return _sequential(PARAMS)


def test_checkpoint_round_trip_into_cached_model(trainers):
    a, _ = trainers
    s0 = a.initial_checkpoint(TINY, PARAMS, seed=5)
    s1, stats = a.train(TINY, PARAMS, s0, *PARTS[0], seed=11)
    assert stats["n"] == 100 and np.isfinite(stats["loss"])
    assert {"load_s", "train_s", "save_s"} <= stats.keys()
    s2, _ = a.train(TINY, PARAMS, s1, *PARTS[1], seed=12)  # cached model now holds s2
    cached = a._model(TINY, PARAMS)
    load_checkpoint(cached, s1)
    back = _arrays(dump_checkpoint(cached))
    want = _arrays(s1)
    assert back.keys() == want.keys()
    assert _max_diff(back, want) == 0.0
    it = [k for k in want if k.startswith("o")][0]  # optimizer variable o0 is `iterations`
    assert int(want[it]) == 4 and int(_arrays(s2)[it]) == 4 + 3  # ceil(100/32), then ceil(90/32) steps


def test_mop_hops_equal_sequential_keras(trainers, reference_state):
    """Hopping over 2 partitions through bytes checkpoints, alternating between worker A (model reused from its
    cache on hop 3) and worker B (a second HopTrainer, its own freshly built model), equals plain Keras
    train_on_batch calls on one model object over the same batches EXACTLY: max abs diff == 0.0 for weights, optimizer variables (Adam
    moments, iterations) and dropout seed states. Exact, not < 1e-6, because every float op is the same op on the
    same values in the same order (same process, op determinism, 1 thread); any difference means lost state."""
    workers = dict(zip("AB", trainers))
    state = workers["A"].initial_checkpoint(TINY, PARAMS, seed=5)
    for part, seed, w in HOPS:
        state, _ = workers[w].train(TINY, PARAMS, state, *PARTS[part], seed=seed)
    got = _arrays(state)
    assert _max_diff(got, reference_state, "w") == 0.0
    assert _max_diff(got, reference_state, "o") == 0.0
    assert _max_diff(got, reference_state, "s") == 0.0


def test_weights_only_checkpoint_diverges(reference_state):
    """Why we save optimizer state: restoring only weights restarts Adam (moments, iterations) every hop.
    Simulated on one model object (no rebuild/retrace per hop): zero the optimizer slots before each hop,
    which is exactly what a fresh optimizer holds."""
    keras.utils.set_random_seed(5)
    model = tb.tiny(PARAMS, INFO)
    model.optimizer.build(model.trainable_variables)
    for part, seed, _ in HOPS:
        for v in model.optimizer.variables:
            if "learning_rate" not in v.path:
                v.assign(np.zeros(v.shape, v.dtype))
        _keras_sub_epoch(model, *PARTS[part], seed, PARAMS["batch_size"])
    got = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    assert _max_diff(got, reference_state, "w") > 0


def test_initial_state_deterministic_per_seed(trainers):
    a, b = trainers
    s1, s2, s3 = a.initial_checkpoint(TINY, PARAMS, 1), b.initial_checkpoint(TINY, PARAMS, 1), a.initial_checkpoint(TINY, PARAMS, 2)
    assert s1 == s2  # byte-identical (fixed zip timestamps), so checkpoint sha256 is reproducible
    assert _max_diff(_arrays(s1), _arrays(s3), "w") > 0


def test_load_state_rejects_other_architecture(trainers):
    a, _ = trainers
    state = a.initial_checkpoint(TINY, {**PARAMS, "units": 6}, 1)
    with pytest.raises(StoreError, match="shape"):
        load_checkpoint(a._model(TINY, PARAMS), state)
    with pytest.raises(StoreError, match="readable"):
        load_checkpoint(a._model(TINY, PARAMS), b"not a checkpoint")


def test_evaluate_and_keras_model(trainers):
    a, _ = trainers
    state = a.initial_checkpoint(TINY, PARAMS, 3)
    res = a.evaluate(TINY, PARAMS, state, *PARTS[1])
    assert set(res) == {"loss", "accuracy", "n"} and res["n"] == 90
    model = a.keras_model(TINY, PARAMS, state)
    assert model is not a._model(TINY, PARAMS)
    assert _max_diff(_arrays(dump_checkpoint(model)), _arrays(state)) == 0.0
    assert a.evaluate(TINY, PARAMS, state, PARTS[1][0][:0], PARTS[1][1][:0]) == {"n": 0}


def test_loop_matches_keras_fit_on_a_fixed_order():
    """The compiled loop is Keras's own train step: with the rows already in the hop's order and no shuffle,
    one hop equals model.fit(shuffle=False) on those rows (to float rounding: fit's iterator is another graph)."""
    x, y = PARTS[0]
    order = row_order(len(x), 11)
    t = HopTrainer(INFO)
    state = t.initial_checkpoint(TINY, PARAMS, seed=5)
    state, stats = t.train(TINY, PARAMS, state, x, y, seed=11)
    keras.utils.set_random_seed(5)
    ref = tb.tiny(PARAMS, INFO)
    hist = ref.fit(x[order], y[order], batch_size=PARAMS["batch_size"], epochs=1, shuffle=False, verbose=0)
    assert _max_diff(_arrays(state), _arrays(dump_checkpoint(ref)), "w") < 1e-6
    assert _max_diff(_arrays(state), _arrays(dump_checkpoint(ref)), "o") < 1e-6
    assert stats["loss"] == pytest.approx(hist.history["loss"][-1], abs=1e-6)


LR_HOPS = [(0, 11, None), (1, 12, None), (0, 13, None)]


def test_configs_differing_in_learning_rate_share_one_traced_loop():
    """Two learning rates (and two batch sizes) of one architecture, interleaved hop by hop on one worker:
    one cached model, the train loop traced once; each config's result equals training it alone."""
    configs = [PARAMS, {**PARAMS, "learning_rate": 1e-3}, {**PARAMS, "learning_rate": 1e-3, "batch_size": 16}]
    t = HopTrainer(INFO)
    states = [t.initial_checkpoint(TINY, p, seed=5) for p in configs]
    traced = []
    for part, seed, _ in LR_HOPS:
        for i, p in enumerate(configs):
            states[i], stats = t.train(TINY, p, states[i], *PARTS[part], seed=seed)
            traced.append(stats["traced"])
    assert len(t.traces()) == 1 and list(t.traces().values())[0][0] == 1, t.traces()
    assert traced == [True] + [False] * (len(traced) - 1)
    got = [_arrays(s) for s in states]
    for i, p in enumerate(configs):
        assert _max_diff(got[i], _sequential(p, hops=LR_HOPS)) == 0.0, f"config {i} differs from training it alone"
        lr = [k for k in got[i] if k.startswith("o")][1]  # o1 is the optimizer's learning-rate variable
        assert float(got[i][lr]) == pytest.approx(p["learning_rate"])
    assert _max_diff(got[0], got[1], "w") > 1e-3 and _max_diff(got[1], got[2], "w") > 1e-3
    other = {**PARAMS, "units": 6}
    t.train(TINY, other, t.initial_checkpoint(TINY, other, seed=5), *PARTS[0], seed=1)
    assert len(t.traces()) == 2, "another architecture gets its own model and trace"


def test_sequential_models_of_one_architecture_share_one_traced_loop():
    """Keras numbers a Sequential model's InputLayer per build; the fingerprint must not see that number."""
    seq = "tests.builders_for_tests:tiny_sequential"
    t = HopTrainer(INFO)
    results = []
    for lr in (1e-2, 1e-3):
        p = {"units": 8, "batch_size": 32, "learning_rate": lr}
        state, stats = t.train(seq, p, t.initial_checkpoint(seq, p, seed=5), *PARTS[0], seed=11)
        results.append((stats["arch"], stats["traced"], _arrays(state)))
    assert results[0][0] == results[1][0] and [r[1] for r in results] == [True, False]
    assert len(t.traces()) == 1
    assert _max_diff(results[0][2], results[1][2], "w") > 1e-4, "each config trains with its own learning rate"


def test_evaluation_in_the_last_hop_equals_evaluating_its_checkpoint(trainers):
    a, b = trainers
    x_val, y_val = _data(70, 7)
    state = a.initial_checkpoint(TINY, PARAMS, seed=5)
    state, _ = a.train(TINY, PARAMS, state, *PARTS[0], seed=11)
    state, stats = b.train(TINY, PARAMS, state, *PARTS[1], seed=12, val=(x_val, y_val))
    assert stats["eval_s"] > 0 and stats["metrics"]["n"] == 70
    assert stats["metrics"] == a.evaluate(TINY, PARAMS, state, x_val, y_val)
    fresh = HopTrainer(INFO).keras_model(TINY, PARAMS, state)
    want = fresh.evaluate(x_val, y_val, batch_size=8192, verbose=0, return_dict=True)
    assert set(want) | {"n"} == set(stats["metrics"])
    for k, v in want.items():
        assert stats["metrics"][k] == pytest.approx(v, abs=1e-6)


# ------------------------------------------------------------------------------------- failures

def test_nan_loss_fails_config(trainers):
    a, _ = trainers
    x, y = _data(64, 3)
    x[5, 1] = np.inf
    state = a.initial_checkpoint(TINY, PARAMS, 1)
    with pytest.raises(ConfigFailed, match="nan|inf"):
        a.train(TINY, PARAMS, state, x, y, seed=1)


def test_huge_learning_rate_fails_config():
    info = DataInfo((4,), "regression", 0)
    t = HopTrainer(info)
    params = {"optimizer": "sgd", "learning_rate": 1e12, "hidden_units": 8, "batch_size": 16}
    x, _ = _data(128, 4)
    y = 1000.0 * x[:, 0]
    state = t.initial_checkpoint("cerebro_ops.builders:mlp", params, 1)
    with pytest.raises(ConfigFailed, match="loss became (nan|inf)"):
        t.train("cerebro_ops.builders:mlp", params, state, x, y, seed=1)


def test_builder_raising_fails_config(trainers):
    a, _ = trainers
    with pytest.raises(ConfigFailed, match="units must be even"):
        a.initial_checkpoint("tests.builders_for_tests:raising", {}, 1)


@pytest.mark.parametrize("path, problem", [
    ("tests.no_such_module:f", "cannot be found"),
    ("tests.builders_for_tests:tinny", "has no function 'tinny'"),
    ("tests.builders_for_tests:NOT_CALLABLE", "not a function"),
    ("tests.builders_for_tests", "not an import path"),
])
def test_import_builder_errors(path, problem):
    with pytest.raises(SpecError, match=problem) as exc:
        import_builder(path)
    assert exc.value.field == "model.builder"
    if "tinny" in path:
        assert "tests.builders_for_tests:tiny" in exc.value.fix


@pytest.mark.parametrize("name, problem", [
    ("uncompiled", "not compiled"),
    ("not_a_model", "not a keras.Model"),
    ("raising", "raised ValueError: units must be even"),
])
def test_check_builder_errors(name, problem):
    with pytest.raises(SpecError, match=problem) as exc:
        check_builder(f"tests.builders_for_tests:{name}", {}, INFO, "val_loss")
    assert exc.value.field == "model.builder"


def test_check_builder_metric_not_produced():
    check_builder(TINY, PARAMS, INFO, "val_accuracy")
    with pytest.raises(SpecError) as exc:
        check_builder(TINY, PARAMS, INFO, "val_auc")
    assert exc.value.field == "train.metric"
    assert "val_accuracy" in exc.value.problem and "val_loss" in exc.value.problem


def test_data_info():
    assert data_info({"input_shape": [8, 8, 1], "task": "multiclass", "num_classes": 10}) == \
        DataInfo((8, 8, 1), "multiclass", 10)
    assert data_info({"input_shape": [3], "task": "regression", "num_classes": None}).num_classes == 0
    with pytest.raises(DataError):
        data_info({"input_shape": [3], "task": "ranking", "num_classes": 0})


# ------------------------------------------------------------------------------------- builders

@pytest.mark.parametrize("task, classes, width, metric", [
    ("binary", 2, 1, "val_auc"), ("multiclass", 3, 3, "val_accuracy"), ("regression", 0, 1, "val_mae")])
def test_mlp_heads(task, classes, width, metric):
    info = DataInfo((5,), task, classes)
    model = mlp({"hidden_units": 4, "num_layers": 1}, info)
    assert model.output_shape == (None, width)
    check_builder("cerebro_ops.builders:mlp", {"hidden_units": 4, "num_layers": 1}, info, metric)


def test_cnn_on_small_images():
    info = DataInfo((8, 8, 1), "multiclass", 10)
    model = cnn({"filters": 4, "dense_units": 8}, info)
    assert model.output_shape == (None, 10)
    assert model.predict(np.zeros((2, 8, 8, 1), "float32"), verbose=0).shape == (2, 10)


def test_builder_rejects_bad_params():
    with pytest.raises(ValueError, match="optimizer"):
        mlp({"optimizer": "lbfgs"}, INFO)


def test_a_config_passed_on_by_another_worker_trains_without_a_build_and_the_same(monkeypatch):
    """Worker A builds a config (its first hop); worker B, told A's (architecture, learning rate), runs the
    config's next hop on its cached model of that architecture without building it, with the same result."""
    slow_lr = {**PARAMS, "learning_rate": 1e-3}
    a, b, plain = HopTrainer(INFO), HopTrainer(INFO), HopTrainer(INFO)
    state = a.initial_checkpoint(TINY, slow_lr, seed=5)
    state, _ = a.train(TINY, slow_lr, state, *PARTS[0], seed=11)
    told = a.config_of(TINY, slow_lr)
    assert told[1] == pytest.approx(1e-3)
    assert not b.know_config(TINY, slow_lr, *told), "B has no model of that architecture cached: no effect"
    b.train(TINY, PARAMS, b.initial_checkpoint(TINY, PARAMS, seed=7), *PARTS[1], seed=3)  # B caches the arch
    assert b.know_config(TINY, slow_lr, *told)
    builds = []
    monkeypatch.setattr(b, "_build", lambda *args: builds.append(args))
    hinted, stats = b.train(TINY, slow_lr, state, *PARTS[1], seed=12)
    assert builds == [] and stats["traced"] is False
    expected, _ = plain.train(TINY, slow_lr, state, *PARTS[1], seed=12)
    assert _max_diff(_arrays(hinted), _arrays(expected)) == 0.0
    assert not b.know_config(TINY, slow_lr, "another-arch", 0.5), "a config B knows keeps what B knows"
    assert b.config_of(TINY, slow_lr) == told


class OwnTrainStep(keras.Model):
    """A functional model whose train_step is its own (here Keras's, called through super())."""

    def train_step(self, data):
        return super().train_step(data)


def _compiled_loop(model):
    from cerebro_ops.keras.train_loop import CompiledLoop, route

    x, y = PARTS[0]
    loop = CompiledLoop(model, INFO.input_shape, route(model, None, [], {}))
    loop.build(x[:1], y[:1])
    return loop, x, y


def _metric_totals(model) -> list[float]:
    """The summed variables of each compiled metric (accuracy, AUC), the loss tracker left out."""
    return [float(sum(np.sum(keras.ops.convert_to_numpy(v)) for v in m.variables))
            for m in model._compile_metrics.metrics]


@pytest.mark.parametrize("own_step", [False, True])
def test_training_updates_no_compiled_metric_and_evaluation_all(own_step):
    """A hop reports its loss only: the train loop is traced without the compiled metrics (accuracy and AUC
    were updated on every training batch for nothing). Evaluation still computes them; a model with its own
    train_step keeps what that step does."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input(shape=INFO.input_shape)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dense(8, activation="relu")(inputs))
    model = (OwnTrainStep if own_step else keras.Model)(inputs, out)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", keras.metrics.AUC(name="auc")])
    loop, x, y = _compiled_loop(model)
    variables = len(loop.metric_state())
    loss = loop.train(x, y, row_order(len(x), 11), 32)
    assert np.isfinite(loss) and model._compile_metrics is not None
    assert len(loop.metric_state()) == variables == 8  # loss (2), accuracy (2), AUC (4): each once
    trained = _metric_totals(model)
    assert all(t > 0 for t in trained) if own_step else trained == [0.0, 0.0]
    metrics = loop.evaluate(x, y)
    assert set(metrics) == {"loss", "accuracy", "auc"} and 0.0 < metrics["auc"] <= 1.0
    assert all(t > 0 for t in _metric_totals(model))


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("count", [0, 1, 4])
def test_repeat_runs_each_step_once_in_order(traced, count):
    """The loops' while loop (written out, traced without AutoGraph): each step once, in order, its state
    changes seen by the next step, eagerly and inside a tf.function."""
    import tensorflow as tf

    from cerebro_ops.keras.train_loop import repeat

    digits = tf.Variable(0, dtype=tf.int64)

    def run(n):
        repeat(n, lambda i: digits.assign(digits * 10 + tf.cast(i, tf.int64) + 1))
        return digits.read_value()

    fn = tf.function(run, autograph=False) if traced else run
    got = int(fn(tf.constant(count, tf.int32)))
    assert got == int("".join(str(i + 1) for i in range(count)) or 0)
