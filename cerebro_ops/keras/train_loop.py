"""The compiled loops of a hop: one sub-epoch of training, or one evaluation, as a single graph call.

Adapter module (TensorFlow/Keras). Why not ``model.fit``: each fit call pays 80-340 ms of fixed setup
(data adapter, callbacks, iterator) before its first batch; a hop is one fit call, so that setup was paid W
times per model per epoch. Here the batches run inside one ``tf.function`` (a ``tf.while_loop`` over Keras's
own ``train_step``/``test_step``, so the loss, gradients, optimizer update and metrics are Keras's), on data
that is already a tensor, shuffled by a permutation drawn from the hop seed.

Why the loops are written as ``tf.while_loop`` and traced with AutoGraph off: AutoGraph rewrote these
functions from their source once per process (parse, transform, compile: 0.06-0.08 s of every worker's
first hop, beside 0.3-0.4 s of tracing and graph optimisation), and Keras never runs ``train_step`` through
AutoGraph either, so a custom train_step behaves here as it does in ``fit``.

Why the loop takes the batch size and the data with an unknown number of rows: the graph is traced once per
model architecture and serves every config of that architecture (batch sizes included) and every partition.

Why an architecture fingerprint: configs that differ only in the learning rate (or the batch size) build the
same graph. Keyed by the fingerprint, they share one cached model and one traced function; the learning
rate is an optimizer variable, so it is state like the weights and comes with the checkpoint.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any, Mapping

import numpy as np

from cerebro_ops.keras.lean_import import import_keras

keras = import_keras()  # without the plotting and scikit-learn extras (lean_import.py)
import tensorflow as tf  # noqa: E402

EVAL_BATCH = 8192  # few steps: an evaluation step has a fixed cost


# --------------------------------------------------------------------------------------------- fingerprint

def architecture_key(builder: str, model: keras.Model) -> str | None:
    """A short hash of everything that shapes the traced graph: the model's config (layer names replaced by
    their position, since Keras numbers auto-named layers per process), its variables' shapes, and the
    compile config with the optimizer's learning rate (a variable) and name left out.
    None when the model cannot describe itself (e.g. a subclassed model without get_config)."""
    try:
        config = model.get_config()
        compiled = model.get_compile_config() or {}
    except Exception:  # NotImplementedError for subclassed models, or anything a custom get_config raises
        return None
    names = {model.name: "<model>"}
    # Every layer, nested ones and a Sequential's InputLayer included (model.layers leaves that one out, yet
    # get_config names it): otherwise each build of a Sequential model would look like a new architecture.
    flat = getattr(model, "_flatten_layers", None)
    layers = list(flat(include_self=False)) if flat else list(model.layers)
    names.update({layer.name: f"<layer{i}>" for i, layer in enumerate(layers)})
    optimizer = _optimizer_without_learning_rate(compiled.get("optimizer"))
    if optimizer is None:
        return None
    described = {
        "builder": builder,
        "config": _renamed(config, names),
        "compile": {**{k: v for k, v in compiled.items() if k != "optimizer"}, "optimizer": optimizer},
        "variables": [(tuple(v.shape), str(v.dtype)) for v in model.variables],
        "optimizer_variables": [(tuple(v.shape), str(v.dtype)) for v in model.optimizer.variables],
    }
    text = json.dumps(described, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _optimizer_without_learning_rate(opt) -> Any:
    """The serialised optimizer minus its learning rate when that is a plain number (a schedule is part of the
    graph, so it stays in the fingerprint); None when the model has no optimizer."""
    if not isinstance(opt, dict):
        return opt
    cfg = dict(opt.get("config") or {})
    lr = cfg.get("learning_rate")
    if isinstance(lr, (int, float)):
        cfg.pop("learning_rate")
    cfg.pop("name", None)
    return {**opt, "config": cfg}


def _renamed(obj, names: Mapping[str, str]):
    if isinstance(obj, str):
        return names.get(obj, obj)
    if isinstance(obj, dict):
        return {k: _renamed(v, names) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_renamed(v, names) for v in obj]
    return obj


def learning_rate_of(model: keras.Model) -> float | None:
    """The optimizer's learning rate when it is a plain value (a variable in Keras 3); None for a schedule or a
    callable, which cannot be assigned."""
    opt = model.optimizer
    if not isinstance(getattr(opt, "_learning_rate", None), keras.Variable):
        return None
    return float(keras.ops.convert_to_numpy(opt.learning_rate))


def set_learning_rate(model: keras.Model, lr: float | None) -> None:
    if lr is not None:
        model.optimizer.learning_rate.assign(lr)


# --------------------------------------------------------------------------------------------- routing

def route(model: keras.Model, spans: Mapping[str, tuple[int, int]] | None, declared: list, routes: dict):
    """A graph function: a batch of flat feature rows -> what the model takes (see trainer.model_inputs)."""
    if len(declared) <= 1:
        as_dict = bool(declared) and isinstance(getattr(model, "_inputs_struct", None), dict)
        return (lambda x: {declared[0][0]: x}) if as_dict else (lambda x: x)
    pieces = []
    for name, shape in declared:
        start, end = spans[routes[name]]
        target = shape if all(isinstance(d, int) for d in shape) else (end - start,)
        pieces.append((name, start, end, target))

    def route(x):
        flat = tf.reshape(x, (tf.shape(x)[0], -1))
        return {name: tf.reshape(flat[:, s:e], (-1,) + tuple(t)) for name, s, e, t in pieces}
    return route


# --------------------------------------------------------------------------------------------- one evaluation

# Up to this many batches an evaluation runs eagerly: tracing the graph loop costs more than it saves there
# (65k validation rows, 8 batches: 0.09 s eagerly, 0.15 s traced, 0.25 s through Keras evaluate).
EAGER_EVAL_BATCHES = 16


def evaluate_metrics(model: keras.Model, x, y: np.ndarray, batch_size: int = EVAL_BATCH) -> dict[str, float]:
    """The compiled loss and metrics of `model` over (x, y) as ``model.evaluate(..., return_dict=True)`` gives
    them, Keras's own test_step on the same batches, over data that is already a tensor. `x`: what the model
    takes (an array, or {input name: array}).

    Why not evaluate: each call builds a data adapter and traces Keras's multi-step test function, which costs
    more than the evaluation itself for the one call the register step makes per model (challenger, champion)."""
    xt = tf.nest.map_structure(lambda a: tf.constant(np.asarray(a, dtype=np.float32)), x)
    yt = tf.constant(np.asarray(y, dtype=np.float32))
    model._symbolic_build(data_batch=(tf.nest.map_structure(lambda a: a[:1], xt), yt[:1]))  # as evaluate does
    for m in model.metrics:
        m.reset_state()

    def run(x, y):
        evaluate_batches(model, tf.shape(y)[0], batch_size,
                         lambda start, end: (tf.nest.map_structure(lambda a: a[start:end], x), y[start:end]))
        return model.get_metrics_result()

    eager = -(-len(y) // batch_size) <= EAGER_EVAL_BATCHES
    return {k: float(v) for k, v in (run if eager else tf.function(run, autograph=False))(xt, yt).items()}


def evaluate_batches(model: keras.Model, n, batch_size, batch) -> None:
    """Keras's test_step on rows [0, n) in batches of `batch_size`, `batch(start, end)` giving each (inputs,
    labels): the metrics add them up. Traced inside a tf.function, or run eagerly."""
    def step(i):
        start = i * batch_size
        model.test_step(batch(start, tf.minimum(start + batch_size, n)))
    repeat((n + batch_size - 1) // batch_size, step)


# --------------------------------------------------------------------------------------------- loops

def repeat(count, step) -> None:
    """step(i) for i = 0 .. count - 1, in order: one graph while loop when traced (what AutoGraph makes of a
    ``for i in tf.range(count)`` loop), a Python loop when eager. `step`'s return value is ignored."""
    def body(i):
        step(i)
        return (i + 1,)
    tf.while_loop(lambda i: i < count, body, (tf.constant(0, tf.int32),))


class CompiledLoop:
    """The traced train and evaluation functions of one cached model (one per architecture per worker).

    `train_traces` / `eval_traces` count how often each function was traced (the counter is bumped by the
    Python body, which only runs while TensorFlow traces)."""

    def __init__(self, model: keras.Model, feature_shape: tuple[int, ...], route):
        self.model = model
        self.route = route
        self.train_traces = 0
        self.eval_traces = 0
        x_spec = tf.TensorSpec((None,) + tuple(feature_shape), tf.float32)
        y_spec = tf.TensorSpec((None,), tf.float32)
        self._train = tf.function(self._train_body, autograph=False, input_signature=(
            x_spec, y_spec, tf.TensorSpec((None,), tf.int32), tf.TensorSpec((), tf.int32)))
        self._eval = tf.function(self._eval_body, autograph=False,
                                 input_signature=(x_spec, y_spec, tf.TensorSpec((), tf.int32)))

    def build(self, x_row: np.ndarray, y_row: np.ndarray) -> None:
        """Create the compiled loss and metric variables (as fit does first) so the traced loop creates none."""
        batch = (self.route(tf.constant(x_row)), tf.constant(y_row))
        self.model._symbolic_build(data_batch=batch)

    def train(self, x: tf.Tensor, y: tf.Tensor, order: np.ndarray, batch_size: int) -> float:
        """One pass over the rows x[order] in batches of `batch_size`; the mean loss over the pass (as fit
        reports it: batch losses weighted by batch size)."""
        with loss_only(self.model):
            logs = self._train(x, y, tf.constant(order, tf.int32), tf.constant(int(batch_size), tf.int32))
        return float(logs["loss"])

    def evaluate(self, x: tf.Tensor, y: tf.Tensor, batch_size: int = EVAL_BATCH) -> dict[str, float]:
        self.reset_metrics()
        return self.evaluate_more(x, y, batch_size)

    def evaluate_more(self, x: tf.Tensor, y: tf.Tensor, batch_size: int = EVAL_BATCH) -> dict[str, float]:
        """Add (x, y) to the metrics' running state; the metrics over every row added since the reset."""
        logs = self._eval(x, y, tf.constant(int(batch_size), tf.int32))
        return {k: float(v) for k, v in logs.items()}

    def reset_metrics(self) -> None:
        for m in self.model.metrics:
            m.reset_state()

    def metric_state(self) -> list:
        """The metrics' variables (totals, counts, confusion counts): what adds up over disjoint rows."""
        return [np.asarray(keras.ops.convert_to_numpy(v)).tolist() for v in self._metric_variables()]

    def set_metric_state(self, state: list) -> None:
        variables = self._metric_variables()
        if len(state) != len(variables):
            raise ValueError(f"metric state has {len(state)} variables, the model's metrics {len(variables)}")
        for v, value in zip(variables, state):
            v.assign(np.asarray(value, dtype=v.dtype).reshape(v.shape))

    def _metric_variables(self) -> list:
        return [v for m in self.model.metrics for v in m.variables]

    def _train_body(self, x, y, order, batch_size):
        self.train_traces += 1
        model = self.model
        for m in model.metrics:
            m.reset_state()
        n = tf.shape(order)[0]

        def step(i):
            rows = order[i * batch_size:tf.minimum((i + 1) * batch_size, n)]
            model.train_step((self.route(tf.gather(x, rows)), tf.gather(y, rows)))
        repeat((n + batch_size - 1) // batch_size, step)
        return model.get_metrics_result()

    def _eval_body(self, x, y, batch_size):
        self.eval_traces += 1
        model = self.model  # the metrics are reset by evaluate(), not here: evaluate_more() adds to them
        evaluate_batches(model, tf.shape(x)[0], batch_size, lambda start, end: (self.route(x[start:end]), y[start:end]))
        return model.get_metrics_result()


@contextlib.contextmanager
def loss_only(model: keras.Model):
    """The model without its compiled metrics for the block, which traces the train loop: a hop reports only its
    loss, and the metrics' update on every training batch was work nobody read (Keras's binary accuracy and
    200-threshold AUC: 9-15% of a small MLP's training time and 0.07 s of each trace). Evaluation keeps them.
    Only for Keras's own train_step: an overridden one may use its metrics as it likes."""
    if type(model).train_step is not keras.Model.train_step or not hasattr(model, "_compile_metrics"):
        yield
        return
    # Past Keras's __setattr__, which would also track the restored metrics as the model's own (twice in
    # model.metrics: a metric state another process could no longer load).
    metrics = model._compile_metrics
    object.__setattr__(model, "_compile_metrics", None)
    try:
        yield
    finally:
        object.__setattr__(model, "_compile_metrics", metrics)


def row_order(n: int, seed: int) -> np.ndarray:
    """The row order of a hop: a permutation drawn from the hop seed (the same on every worker and run)."""
    return np.random.default_rng(int(seed)).permutation(n).astype(np.int32)
