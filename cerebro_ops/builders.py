"""Built-in model builders: ``builder(params, info) -> compiled keras.Model``.

Referenced from a spec as ``cerebro_ops.builders:mlp`` / ``cerebro_ops.builders:cnn``. A builder must be
deterministic given the global seeds (the trainer seeds before calling it) and must return a *compiled*
model: the trainer checkpoints weights + optimizer variables, so the optimizer has to exist.
A model takes the whole feature vector (one input of shape ``info.input_shape``) or one input per feature
column: ``keras.Input(shape=(end - start,), name=column)`` for each ``column, (start, end)`` in
``info.feature_spans`` (None when the builder is checked before the data is prepared).
Adapter module: Keras is imported here, never in the pure core.
"""
from __future__ import annotations

from typing import Any

import keras

TASKS = ("binary", "multiclass", "regression")


def mlp(params: dict, info: Any) -> keras.Model:
    """Dense network. params: hidden_units=64, num_layers=2, dropout=0.0, learning_rate=1e-3, optimizer='adam'."""
    units = int(params.get("hidden_units", 64))
    layers = int(params.get("num_layers", 2))
    dropout = float(params.get("dropout", 0.0))
    if units < 1 or layers < 0:
        raise ValueError(f"hidden_units must be >= 1 and num_layers >= 0, got {units} and {layers}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input(shape=tuple(info.input_shape))
    x = inputs
    if len(info.input_shape) > 1:  # array features (e.g. images) feed a dense net flattened
        x = keras.layers.Flatten()(x)
    for _ in range(layers):
        x = keras.layers.Dense(units, activation="relu")(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
    return _head_and_compile(inputs, x, params, info)


def cnn(params: dict, info: Any) -> keras.Model:
    """Conv2D→MaxPool→Conv2D→Flatten→Dense→head. params: filters=16, kernel_size=3, dense_units=64,
    learning_rate=1e-3, optimizer='adam'. The second convolution has 2*filters (the usual doubling)."""
    filters = int(params.get("filters", 16))
    kernel = int(params.get("kernel_size", 3))
    dense = int(params.get("dense_units", 64))
    shape = tuple(info.input_shape)
    if len(shape) not in (2, 3):
        raise ValueError(f"cnn needs an image input of shape (h, w) or (h, w, c), got {shape}")
    inputs = keras.Input(shape=shape)
    x = inputs
    if len(shape) == 2:  # a single-channel image stored without its channel axis
        x = keras.layers.Reshape(shape + (1,))(x)
    # 'same' padding keeps small images (8x8) valid for any kernel size.
    x = keras.layers.Conv2D(filters, kernel, padding="same", activation="relu")(x)
    if min(shape[0], shape[1]) >= 2:
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(2 * filters, kernel, padding="same", activation="relu")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(dense, activation="relu")(x)
    return _head_and_compile(inputs, x, params, info)


def _head_and_compile(inputs, x, params: dict, info: Any) -> keras.Model:
    task = info.task
    if task == "binary":
        out = keras.layers.Dense(1, activation="sigmoid")(x)
        loss, metrics = "binary_crossentropy", ["accuracy", keras.metrics.AUC(name="auc")]
    elif task == "multiclass":
        if int(info.num_classes) < 2:
            raise ValueError(f"multiclass needs num_classes >= 2, got {info.num_classes}")
        out = keras.layers.Dense(int(info.num_classes), activation="softmax")(x)
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    elif task == "regression":
        out = keras.layers.Dense(1)(x)
        # Reported in the label's units (the label is standardised for training; encoding.in_label_units).
        loss, metrics = "mse", ["mae", keras.metrics.RootMeanSquaredError(name="rmse")]
    else:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    model = keras.Model(inputs, out)
    model.compile(optimizer=_optimizer(params), loss=loss, metrics=metrics)
    return model


def _optimizer(params: dict) -> keras.optimizers.Optimizer:
    lr = float(params.get("learning_rate", 1e-3))
    name = str(params.get("optimizer", "adam")).lower()
    if not lr > 0:
        raise ValueError(f"learning_rate must be positive, got {lr}")
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=float(params.get("momentum", 0.0)))
    raise ValueError(f"optimizer {name!r} is not supported; use 'adam' or 'sgd'")
