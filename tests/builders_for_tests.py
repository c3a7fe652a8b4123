"""Builders used only by tests/keras/test_trainer.py (imported as 'tests.builders_for_tests:<name>')."""
from __future__ import annotations

import keras

NOT_CALLABLE = 3


def tiny(params, info):
    """Small MLP, Adam: enough state (moments + iterations) to expose a weights-only checkpoint."""
    inputs = keras.Input(shape=info.input_shape)
    x = keras.layers.Dense(int(params.get("units", 8)), activation="relu")(inputs)
    if params.get("dropout"):
        x = keras.layers.Dropout(float(params["dropout"]))(x)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, out)
    model.compile(optimizer=keras.optimizers.Adam(float(params.get("learning_rate", 1e-2))),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def tiny_sequential(params, info):
    """The same MLP as a Sequential model (whose config names an auto-numbered InputLayer)."""
    model = keras.Sequential([keras.Input(shape=info.input_shape),
                              keras.layers.Dense(int(params.get("units", 8)), activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(float(params.get("learning_rate", 1e-2))),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def uncompiled(params, info):
    inputs = keras.Input(shape=info.input_shape)
    return keras.Model(inputs, keras.layers.Dense(1)(inputs))


def not_a_model(params, info):
    return "a string"


def raising(params, info):
    raise ValueError("units must be even")


def tiny_fails_on_13(params, info):
    """`tiny`, except that units == 13 is a broken config (failure isolation tests)."""
    if int(params.get("units", 8)) == 13:
        raise ValueError("13 units is unlucky")
    return tiny(params, info)


def diverges_in_training(params, info):
    """Builds, compiles and evaluates (so the pre-flight builder check passes), but every output is NaN,
    so the first hop's loss is NaN and the config fails in training."""
    inputs = keras.Input(shape=info.input_shape)
    x = keras.layers.Rescaling(float("nan"))(keras.layers.Dense(int(params.get("units", 8)))(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def tf_random_init(params, info):
    """Initial weights from a stateful TensorFlow random op (the global seed, a kernel with a counter), plus
    Keras initializers and a Dropout seed: every source of randomness an initial checkpoint can draw from."""
    inputs = keras.Input(shape=info.input_shape)
    x = keras.layers.Dense(8, activation="relu", kernel_initializer=_stateful_normal)(inputs)
    x = keras.layers.Dropout(0.2)(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    return model


def _stateful_normal(shape, dtype=None):
    import tensorflow as tf
    return tf.random.normal(shape, seed=3)
