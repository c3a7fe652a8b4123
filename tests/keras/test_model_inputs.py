"""Models with one named input per feature column: routing the flat feature vector through feature_spans."""
from __future__ import annotations

import keras
import numpy as np
import pytest

from cerebro_ops.core.errors import ConfigFailed, DataError, SpecError
from cerebro_ops.keras.train_loop import row_order
from cerebro_ops.keras.trainer import (DataInfo, HopTrainer, check_builder, data_info, dump_checkpoint, model_inputs,
                                 sanitized_name)

# Layout of the flat feature vector: numerics, then a one-hot categorical (3 colours + other), then a 2x2 array.
SPANS = {"x1": (0, 1), "dep.time": (1, 2), "color": (2, 6), "patch": (6, 10)}
META = {"input_shape": [10], "task": "binary", "num_classes": 2,
        "feature_spans": {k: list(v) for k, v in SPANS.items()}}
INFO = data_info(META)
PER_COLUMN = "tests.keras.test_model_inputs:per_column"
PARAMS = {"units": 8, "batch_size": 16, "learning_rate": 1e-2}


def per_column(params, info):
    """Cerebro-style: one keras.Input per feature column (a sanitized name for 'dep.time'), concatenated."""
    inputs = [keras.Input(shape=(1,), name="x1"), keras.Input(shape=(1,), name="dep_time"),
              keras.Input(shape=(4,), name="color"), keras.Input(shape=(2, 2), name="patch")]
    parts = inputs[:3] + [keras.layers.Flatten()(inputs[3])]
    x = keras.layers.Dense(int(params.get("units", 8)), activation="relu")(keras.layers.Concatenate()(parts))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer=keras.optimizers.Adam(float(params.get("learning_rate", 1e-2))),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def misnamed(params, info):
    inputs = [keras.Input(shape=(1,), name=n) for n in ("x1", "speed")]
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()(inputs)))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def wrong_width(params, info):
    """'color' is one-hot with 4 slots, not a single value."""
    inputs = [keras.Input(shape=(1,), name=n) for n in ("x1", "color")]
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Concatenate()(inputs)))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def single_dict_input(params, info):
    inp = keras.Input(shape=(10,), name="features")
    model = keras.Model({"features": inp}, keras.layers.Dense(1, activation="sigmoid")(inp))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 10)).astype("float32")
    y = (x[:, 0] - x[:, 1] + x[:, 6] > 0).astype("float32")
    return x, y


def test_data_info_reads_feature_spans():
    assert INFO.feature_spans == SPANS
    assert data_info({"input_shape": [10], "task": "binary", "num_classes": 2}).feature_spans is None
    assert hash(INFO) == hash(DataInfo((10,), "binary", 2))  # spans do not make the info unhashable
    with pytest.raises(DataError, match=r"feature_spans of \['x1'\] fall outside the 10 feature values"):
        data_info({**META, "feature_spans": {"x1": [0, 11]}})
    with pytest.raises(DataError, match="feature_spans is not"):
        data_info({**META, "feature_spans": {"x1": 3}})


def test_sanitized_name_follows_tensorflow():
    assert sanitized_name("dep.time") == sanitized_name("dep_time") == sanitized_name("Dep Time") == "dep_time"
    assert sanitized_name("2nd") == "tensor_2nd"


def test_single_input_model_gets_the_batch_itself():
    from tests.builders_for_tests import tiny
    x, _ = _data(5, 0)
    model = tiny({}, DataInfo((10,), "binary", 2))
    assert model_inputs(model, x, SPANS) is x
    assert model_inputs(model, x, None) is x
    # built on {key: input}: Keras wants the dict, keyed like the builder's
    dict_model = single_dict_input({}, INFO)
    batch = model_inputs(dict_model, x, SPANS)
    assert list(batch) == ["features"] and batch["features"] is x


def test_per_column_model_gets_its_column_slices():
    x, _ = _data(5, 0)
    batch = model_inputs(per_column(PARAMS, INFO), x, SPANS)
    assert list(batch) == ["x1", "dep_time", "color", "patch"]
    np.testing.assert_array_equal(batch["x1"], x[:, 0:1])
    np.testing.assert_array_equal(batch["dep_time"], x[:, 1:2])  # matched through the sanitized name
    np.testing.assert_array_equal(batch["color"], x[:, 2:6])
    assert batch["patch"].shape == (5, 2, 2)  # reshaped to the declared input shape
    np.testing.assert_array_equal(batch["patch"].reshape(5, 4), x[:, 6:10])


def test_unmatched_input_names_are_a_spec_error():
    x, _ = _data(3, 0)
    with pytest.raises(SpecError, match=r"model\.builder.*model inputs \['speed'\] match no feature column"):
        model_inputs(misnamed({}, INFO), x, SPANS)
    with pytest.raises(SpecError, match=r"model input 'color' has shape \(1,\), but feature column 'color' "
                                        r"fills 4 values"):
        model_inputs(wrong_width({}, INFO), x, SPANS)
    with pytest.raises(SpecError, match="no feature_spans"):
        model_inputs(per_column(PARAMS, INFO), x, None)


def test_check_builder_accepts_per_column_models():
    check_builder(PER_COLUMN, PARAMS, INFO, "val_accuracy")
    # before prepare there are no spans: the model is fed zeros in the shapes it declares
    check_builder(PER_COLUMN, PARAMS, DataInfo((7,), "binary", 2), "val_accuracy")
    with pytest.raises(SpecError, match=r"\['speed'\] match no feature column"):
        check_builder("tests.keras.test_model_inputs:misnamed", {}, INFO, "val_accuracy")
    with pytest.raises(SpecError, match="'val_auc' is not reported"):
        check_builder(PER_COLUMN, PARAMS, INFO, "val_auc")


def test_per_column_hops_equal_sequential_keras():
    """Two hops through bytes checkpoints on two trainers equal plain Keras train_on_batch on the column dict,
    over the same batches (each hop's rows in the order drawn from its seed)."""
    parts = [_data(70, 1), _data(50, 2)]
    keras.utils.set_random_seed(3)
    ref = per_column(PARAMS, INFO)
    bs = PARAMS["batch_size"]
    for (x, y), seed in zip(parts, (21, 22)):
        order = row_order(len(x), seed)
        for i in range(0, len(x), bs):
            b = x[order[i:i + bs]]
            cols = {"x1": b[:, 0:1], "dep_time": b[:, 1:2], "color": b[:, 2:6], "patch": b[:, 6:10].reshape(-1, 2, 2)}
            ref.train_on_batch(cols, y[order[i:i + bs]])

    a, b = HopTrainer(INFO), HopTrainer(INFO)
    state = a.initial_checkpoint(PER_COLUMN, PARAMS, seed=3)
    state, stats = a.train(PER_COLUMN, PARAMS, state, *parts[0], seed=21)
    assert stats["n"] == 70
    state, _ = b.train(PER_COLUMN, PARAMS, state, *parts[1], seed=22)
    assert state == dump_checkpoint(ref)  # bit for bit

    x_val, y_val = _data(40, 9)
    got = a.evaluate(PER_COLUMN, PARAMS, state, x_val, y_val)
    cols = model_inputs(ref, x_val, SPANS)
    want = ref.evaluate(cols, y_val, verbose=0, return_dict=True)
    assert got["n"] == 40 and got["accuracy"] == pytest.approx(want["accuracy"]) and got["loss"] == pytest.approx(
        want["loss"])
    model = a.keras_model(PER_COLUMN, PARAMS, state)
    np.testing.assert_allclose(model.predict(cols, verbose=0), ref.predict(cols, verbose=0), rtol=1e-6)


def test_misnamed_model_fails_its_config_naming_the_input():
    t = HopTrainer(INFO)
    state = t.initial_checkpoint("tests.keras.test_model_inputs:misnamed", {}, seed=0)
    with pytest.raises(ConfigFailed, match=r"SpecError.*\['speed'\] match no feature column"):
        t.train("tests.keras.test_model_inputs:misnamed", {}, state, *_data(10, 0), seed=1)


@pytest.mark.parametrize("batch_size", [300, 30])  # 4 batches: eager; 34 batches: one traced graph call
@pytest.mark.parametrize("builder", [PER_COLUMN, "tests.keras.test_model_inputs:single_dict_input",
                                     "tests.builders_for_tests:tiny"])
def test_evaluate_metrics_gives_what_keras_evaluate_gives(builder, batch_size):
    """The register step's metric (champion_policy.metric_of) without Keras evaluate: the same numbers, for a
    flat input, a dict of one input and one input per feature column; the last batch short."""
    from cerebro_ops.keras import train_loop

    assert -(-1000 // 300) <= train_loop.EAGER_EVAL_BATCHES < -(-1000 // 30)
    x, y = _data(1000, 3)
    trainer = HopTrainer(INFO, deterministic=False)
    ckpt = trainer.initial_checkpoint(builder, PARAMS, 0)
    ckpt, _ = trainer.train(builder, PARAMS, ckpt, x, y, seed=1)
    inputs = model_inputs(trainer.keras_model(builder, PARAMS, ckpt), x, SPANS)
    expected = trainer.keras_model(builder, PARAMS, ckpt).evaluate(inputs, y, batch_size=batch_size, verbose=0,
                                                                   return_dict=True)
    got = train_loop.evaluate_metrics(trainer.keras_model(builder, PARAMS, ckpt), inputs, y, batch_size=batch_size)
    assert set(got) == set(expected) and "loss" in got
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert 0.0 < got["loss"] < 5.0
