"""Keras side of one hop: build / check builders, train one sub-epoch, evaluate, (de)serialise training state.

Adapter module: TensorFlow/Keras are imported here (and in builders.py), never in the pure core.

Why the state is weights + optimizer variables (+ RNG seed states): a weights-only checkpoint restarts Adam's
moments and ``iterations`` at every hop, so hopped training silently differs from sequential training. With the
full state, hopping over partitions reproduces sequential training on the same batches bit for bit.

Why a per-process model cache keyed by architecture: building and tracing a model costs 0.3-7 s; reusing one
compiled model per architecture (configs differing only in learning rate or batch size share it, and its
traced loops, see train_loop.py) and assigning a checkpoint's variables into it costs ~5 ms load + ~3 ms save.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib
import io
import json
import math
import os
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from cerebro_ops.core.encoding import in_label_units, loss_name
from cerebro_ops.core.errors import ConfigFailed, DataError, SpecError, StoreError
from cerebro_ops.core.output import load_notices_hidden, quiet_keras, quiet_libraries
from cerebro_ops.core.spec import BUILDER_RE, TASKS
from cerebro_ops.keras.lean_import import import_keras

# Must be set before TensorFlow creates its runtime; harmless if it already has (see _configure_determinism).
_THREAD_ENV = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")

quiet_libraries()  # before TensorFlow starts: its C++ log level is read once; retracing warnings off
with load_notices_hidden():
    keras = import_keras()  # without the plotting and scikit-learn extras (lean_import.py)
    import tensorflow as tf  # noqa: E402

quiet_keras()

from cerebro_ops.keras.seeding import set_init_seed  # noqa: E402
from cerebro_ops.keras.train_loop import (CompiledLoop, architecture_key, learning_rate_of, route, row_order,  # noqa: E402
                         set_learning_rate)

# A worker's arrays: its train partition and the validation split (x and y each). No more: a new epoch's
# partition then pushes out the last one's tensors instead of holding a second copy for the epoch.
_MAX_TENSORS = 4

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_BUILDER_FIX = "write 'package.module:function' naming a function importable on the driver and every worker"


# --------------------------------------------------------------------------------------------- data info

@dataclass(frozen=True)
class DataInfo:
    input_shape: tuple[int, ...]
    task: str
    num_classes: int
    # {feature column: (start, end)} slices of the flattened feature vector; None before prepare has run.
    feature_spans: Mapping[str, tuple[int, int]] | None = field(default=None, hash=False)
    # Regression: the std of the train labels, which the model sees standardised; metrics are scaled back.
    label_std: float | None = None


def data_info(meta: dict) -> DataInfo:
    """DataInfo from data/meta.json (keys input_shape, task, num_classes, and feature_spans when present)."""
    try:
        shape = tuple(int(d) for d in meta["input_shape"])
        task = str(meta["task"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError("meta.json", f"feature metadata is incomplete ({exc.__class__.__name__}: {exc})",
                        "re-run the prepare step") from None
    if task not in TASKS:
        raise DataError("meta.json", f"task {task!r} is not one of {', '.join(TASKS)}", "re-run the prepare step")
    if not shape or any(d < 1 for d in shape):
        raise DataError("meta.json", f"input_shape {shape} is not a list of positive sizes", "re-run the prepare step")
    spans = _spans(meta.get("feature_spans"), math.prod(shape))
    # Regression has no classes; meta may store null there.
    label_std = float(meta["label_stats"]["std"]) if meta.get("label_stats") else None
    return DataInfo(input_shape=shape, task=task, num_classes=int(meta.get("num_classes") or 0), feature_spans=spans,
                    label_std=label_std)


def _spans(raw, width: int) -> dict[str, tuple[int, int]] | None:
    if raw is None:
        return None
    try:
        spans = {str(c): (int(se[0]), int(se[1])) for c, se in dict(raw).items()}
    except (TypeError, ValueError, IndexError) as exc:
        raise DataError("meta.json", f"feature_spans is not {{column: [start, end]}} ({exc})",
                        "re-run the prepare step") from None
    bad = [c for c, (a, b) in spans.items() if not 0 <= a < b <= width]
    if bad:
        raise DataError("meta.json", f"feature_spans of {bad} fall outside the {width} feature values",
                        "re-run the prepare step")
    return spans


# --------------------------------------------------------------------------------------------- model inputs

def sanitized_name(name: str) -> str:
    """The name as TensorFlow sanitizes tensor-spec names: lower case, non-alphanumerics as '_'."""
    swapped = "".join(c if c.isalnum() else "_" for c in str(name).lower()) or "unknown"
    return swapped if swapped[0].isalpha() else "tensor_" + swapped


def _declared_inputs(model) -> list[tuple[str, tuple]]:
    """[(key of the model's input dict, declared shape without the batch axis)]; [] when the model does not
    declare its inputs (a subclassed model, a Sequential without an Input)."""
    try:
        tensors = model.inputs
    except AttributeError:
        return []
    if not tensors:
        return []
    struct = getattr(model, "_inputs_struct", None)  # functional: what the builder passed to keras.Model(...)
    if isinstance(struct, dict):  # Keras matches a dict batch by these keys, not by the tensors' names
        return [(str(k), tuple(t.shape[1:])) for k, t in struct.items()]
    return [(t.name, tuple(t.shape[1:])) for t in tensors]


def input_columns(model, spans: Mapping[str, tuple[int, int]]) -> dict[str, str]:
    """{model input name: feature column} for a model with one input per feature column.

    An input matches the column of the same name, or else the column whose sanitized name is the input's
    sanitized name (Keras and TensorFlow may sanitize dots and spaces). SpecError('model.builder') names the
    inputs that match no column."""
    by_sanitized: dict[str, list[str]] = {}
    for col in spans:
        by_sanitized.setdefault(sanitized_name(col), []).append(col)
    routes, unmatched = {}, []
    for name, _ in _declared_inputs(model):
        if name in spans:
            routes[name] = name
            continue
        cols = by_sanitized.get(sanitized_name(name), [])
        if len(cols) == 1:
            routes[name] = cols[0]
        else:
            unmatched.append(name)
    if unmatched:
        raise SpecError("model.builder", f"model inputs {unmatched} match no feature column (the feature columns "
                        f"are {list(spans)})", "name each keras.Input after its feature column, or build the "
                        "model with a single input taking the whole feature vector")
    return routes


def model_inputs(model, x, spans: Mapping[str, tuple[int, int]] | None):
    """The batch `x` (rows of the flat feature vector) as `model` takes it.

    A model with one input (or undeclared inputs) gets `x` itself; a model with one input per feature column
    gets {input name: x[:, start:end]}, reshaped to the input's declared shape."""
    declared = _declared_inputs(model)
    if len(declared) <= 1:
        return _single_input(model, declared, x)
    if not spans:
        raise SpecError("model.builder", f"the model has {len(declared)} inputs {[n for n, _ in declared]} but "
                        "the prepared data has no feature_spans to route columns to them",
                        "re-run the prepare step (it records which slice of the features each column fills)")
    routes = input_columns(model, spans)
    flat = np.reshape(x, (len(x), -1))
    batch = {}
    for name, shape in declared:
        col = routes[name]
        start, end = spans[col]
        part = flat[:, start:end]
        if all(isinstance(d, int) for d in shape):
            if math.prod(shape) != end - start:
                raise SpecError("model.builder", f"model input {name!r} has shape {shape}, but feature column "
                                f"{col!r} fills {end - start} values", f"declare keras.Input(shape=({end - start},), "
                                f"name={name!r}) (one-hot categoricals take one value per category plus 'other')")
            part = part.reshape((len(x),) + shape)
        batch[name] = part
    return batch


def _single_input(model, declared: list, x):
    # A functional model built on {key: input} wants a dict even for one input (Keras warns otherwise).
    return {declared[0][0]: x} if declared and isinstance(getattr(model, "_inputs_struct", None), dict) else x


# --------------------------------------------------------------------------------------------- builders

def import_builder(path: str) -> Callable[[dict, DataInfo], Any]:
    """Resolve 'package.module:function' with importlib (never eval). Raises SpecError('model.builder', ...)."""
    if not isinstance(path, str) or not BUILDER_RE.match(path):
        raise SpecError("model.builder", f"{path!r} is not an import path", _BUILDER_FIX)
    mod_name, fn_name = path.split(":")
    try:
        module = importlib.import_module(mod_name)
    except ModuleNotFoundError as exc:
        if exc.name and (mod_name == exc.name or mod_name.startswith(exc.name + ".")):
            raise SpecError("model.builder", f"module {mod_name!r} cannot be found",
                            "check the spelling, and that the package is installed (or on PYTHONPATH / shipped "
                            "with --py-files) on the driver and every worker") from None
        raise SpecError("model.builder", f"module {mod_name!r} imports {exc.name!r}, which is not installed",
                        f"install {exc.name!r} on the driver and every worker") from None
    except Exception as exc:  # the module's own top-level code failed
        raise SpecError("model.builder", f"importing module {mod_name!r} raised {exc.__class__.__name__}: {exc}",
                        "fix the module so that it imports cleanly") from None
    fn = getattr(module, fn_name, None)
    if fn is None:
        names = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
        hint = difflib.get_close_matches(fn_name, names, n=1)
        fix = f"did you mean '{mod_name}:{hint[0]}'?" if hint else f"name one of: {', '.join(names[:20]) or '-'}"
        raise SpecError("model.builder", f"module {mod_name!r} has no function {fn_name!r}", fix)
    if not callable(fn):
        raise SpecError("model.builder", f"{path!r} is a {type(fn).__name__}, not a function",
                        "point model.builder at a function builder(params, info) -> compiled keras.Model")
    return fn


def check_builder(builder: str, params: dict, info: DataInfo, metric: str) -> None:
    """Build once (on the driver, before any work) and check the model is compiled and reports `metric`."""
    fn = import_builder(builder)
    try:
        model = fn(dict(params), info)
    except Exception as exc:
        raise SpecError("model.builder", f"{builder} raised {exc.__class__.__name__}: {exc} "
                        f"(params {params})", "fix the builder or narrow the search space") from None
    if not isinstance(model, keras.Model):
        raise SpecError("model.builder", f"{builder} returned a {type(model).__name__}, not a keras.Model",
                        "return a compiled keras.Model")
    if not getattr(model, "compiled", False) or getattr(model, "optimizer", None) is None:
        raise SpecError("model.builder", f"{builder} returned a model that is not compiled (no optimizer)",
                        "call model.compile(optimizer=..., loss=..., metrics=[...]) before returning it")
    # The metric names Keras reports are only known after a run: evaluate two dummy rows.
    x, y = _dummy_batch(info)
    batch = _dummy_inputs(model, x, info)
    try:
        logs = model.evaluate(batch, y, batch_size=2, verbose=0, return_dict=True)
    except Exception as exc:
        shapes = {k: v.shape for k, v in batch.items()} if isinstance(batch, dict) else batch.shape
        raise SpecError("model.builder", f"the model from {builder} fails on a batch of input shape "
                        f"{shapes} ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                        f"build the model for inputs of shape {info.input_shape} and task {info.task}") from None
    key = metric[4:] if metric.startswith("val_") else metric
    if key not in logs:
        available = ", ".join("val_" + k for k in logs)
        raise SpecError("train.metric", f"{metric!r} is not reported by the model; it reports {available}",
                        "set train.metric to one of these, or add the metric to model.compile(metrics=[...])")


def _dummy_batch(info: DataInfo) -> tuple[np.ndarray, np.ndarray]:
    x = np.zeros((2,) + tuple(info.input_shape), dtype="float32")
    y = np.zeros((2,), dtype="int64" if info.task == "multiclass" else "float32")
    return x, y


def _dummy_inputs(model, x, info: DataInfo):
    """The dummy batch `x` as the model takes it. Before prepare (no feature spans) a model with one input per
    column gets zeros in the shapes it declares: its names are checked against the columns on the first hop."""
    if info.feature_spans:
        return model_inputs(model, x, info.feature_spans)
    declared = _declared_inputs(model)
    if len(declared) <= 1:
        return _single_input(model, declared, x)
    return {name: np.zeros((len(x),) + tuple(d if isinstance(d, int) else 1 for d in shape), dtype="float32")
            for name, shape in declared}


def _ensure_built(model: keras.Model, info: DataInfo) -> None:
    """Functional models have variables at construction; a subclassed one gets them on its first call."""
    if not model.built or not model.weights:
        model(_dummy_inputs(model, _dummy_batch(info)[0], info))
    if model.optimizer is not None and not model.optimizer.built:
        # A fresh optimizer has no moment slots yet; build them so they can be saved / assigned into.
        model.optimizer.build(model.trainable_variables)


# --------------------------------------------------------------------------------------------- state

def _state_variables(model: keras.Model) -> tuple[list, list, list]:
    """(weights, optimizer variables incl. iterations, RNG seed states) in a stable order."""
    weights = list(model.weights)
    ids = {id(v) for v in weights}
    # model.variables = weights + SeedGenerator states (dropout streams); metric variables are not included.
    seeds = [v for v in model.variables if id(v) not in ids]
    opt = list(model.optimizer.variables) if model.optimizer is not None else []
    return weights, opt, seeds


def _pack(weights: list[np.ndarray], opt: list[np.ndarray], seeds: list[np.ndarray]) -> bytes:
    arrays = {f"w{i}": a for i, a in enumerate(weights)}
    arrays.update({f"o{i}": a for i, a in enumerate(opt)})
    arrays.update({f"s{i}": a for i, a in enumerate(seeds)})
    # Same layout as np.savez (an uncompressed .npz), but with a fixed zip timestamp: np.savez stamps the
    # current time, so identical states would hash differently and sha256 checks of reruns could not match.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME), "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _numpy_state(model: keras.Model) -> tuple[list, list, list]:
    return tuple([np.asarray(keras.ops.convert_to_numpy(v)) for v in group]  # type: ignore[return-value]
                 for group in _state_variables(model))


def dump_checkpoint(model: keras.Model) -> bytes:
    """Serialise weights (w0..wk), optimizer variables (o0..om) and seed-generator states (s0..sn) to bytes."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return _pack(*_numpy_state(model))


def load_checkpoint(model: keras.Model, data: bytes) -> None:
    """Assign a dump_checkpoint() blob into `model` (same builder and params). Raises StoreError on any mismatch."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise StoreError(f"checkpoint is not a readable state file ({exc.__class__.__name__}: {exc})") from None
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    groups = _state_variables(model)
    plan = []
    for prefix, what, variables in zip("wos", ("weights", "optimizer variables", "seed states"), groups):
        got = sum(1 for k in arrays if k[:1] == prefix and k[1:].isdigit())
        if got != len(variables):
            raise StoreError(f"checkpoint does not match the model: it holds {got} {what}, the model has "
                             f"{len(variables)} (different builder/params, or weights-only checkpoint?)")
        for i, v in enumerate(variables):
            a = arrays.get(f"{prefix}{i}")
            if a is None or tuple(a.shape) != tuple(v.shape):
                raise StoreError(f"checkpoint does not match the model: {what} #{i} ({v.path}) has shape "
                                 f"{None if a is None else tuple(a.shape)} in the checkpoint, "
                                 f"{tuple(v.shape)} in the model")
            plan.append((v, a))
    for v, a in plan:  # validate everything first so a bad checkpoint never half-loads
        v.assign(a)


# --------------------------------------------------------------------------------------------- trainer

_DETERMINISM_DONE = False


def _as_tensor(arr: np.ndarray):
    """`arr` as a tensor, over the same memory when it is safe to share, else a copy.

    Shared: a read-only array (no caller changes it through this view) whose writable base holds exactly its
    bytes, C-contiguous and 64-byte aligned (TensorFlow's kernels abort on less) -- a partition as
    data/reader.py keeps it. The copy costs more than its bytes: a fresh 42 MB block (numpy asks for
    transparent huge pages for it) took 0.2-0.4 s of a worker's first hop on a 2-CPU VM; and a worker then
    holds its partition once, not twice."""
    owner = _writable_owner(arr)
    if owner is None or arr.dtype != np.float32 or arr.size == 0 or arr.ctypes.data % 64:
        return tf.constant(arr)
    return tf.experimental.dlpack.from_dlpack(owner.reshape(arr.shape).__dlpack__())


def _writable_owner(arr: np.ndarray) -> np.ndarray | None:
    """The writable array up `arr`'s base chain that holds exactly `arr`'s bytes; None if `arr` is writable
    itself (its holder may still change it) or there is none."""
    if arr.flags.writeable or not arr.flags.c_contiguous:
        return None
    base = arr.base
    while isinstance(base, np.ndarray) and not base.flags.writeable:
        base = base.base
    if not isinstance(base, np.ndarray) or not base.flags.c_contiguous:
        return None
    if base.ctypes.data != arr.ctypes.data or base.nbytes != arr.nbytes:
        return None
    return base


def _configure_determinism() -> None:
    global _DETERMINISM_DONE
    if _DETERMINISM_DONE:
        return
    for name in _THREAD_ENV:  # read by TF when its runtime starts (if it has not yet)
        os.environ.setdefault(name, "1")
    for setter in (tf.config.threading.set_intra_op_parallelism_threads,
                   tf.config.threading.set_inter_op_parallelism_threads):
        try:
            setter(1)  # one thread: reductions run in a fixed order
        except RuntimeError:
            pass  # runtime already initialised in this process; op determinism below still applies
    tf.config.experimental.enable_op_determinism()
    _DETERMINISM_DONE = True


def _features(x, info: DataInfo) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    return arr.reshape((len(arr),) + tuple(info.input_shape))


def _train_stream(loop: CompiledLoop, stream, seed: int, batch_size: int) -> float:
    """One pass over a streamed partition, buffer by buffer; the mean loss over the pass, as loop.train
    reports it for one buffer (batch losses weighted by batch size, so weighting buffers by rows is exact)."""
    total, rows = 0.0, 0
    for x, y, order in stream.train_chunks(seed, batch_size):
        xt = tf.constant(x.reshape((len(x),) + stream.shape))
        loss = loop.train(xt, tf.constant(y, tf.float32), order, batch_size)
        total += loss * len(order)
        rows += len(order)
        del xt
    return total / rows if rows else float("nan")


def _params_key(builder: str, params: dict) -> tuple[str, str]:
    return builder, json.dumps(params, sort_keys=True, default=repr)


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, tf.errors.ResourceExhaustedError))


@dataclass
class _Cached:
    """One cached model per architecture, with its traced loops (built on first use)."""
    model: keras.Model
    loop: CompiledLoop | None = None


class HopTrainer:
    """Trains configs one hop at a time inside one worker process.

    Keeps one compiled model per architecture (see train_loop.architecture_key): configs that differ only in
    the learning rate or the batch size share it and its traced train/eval loops, so a worker traces each
    architecture once. All training state (weights, optimizer variables incl. the learning rate, seed states)
    comes from the `ckpt` bytes, so which worker (or cached model) runs a hop does not change the result.
    The data arrays of a worker are converted to tensors once and kept (the worker passes the same arrays
    every hop). `max_models` bounds the model cache (least recently used is dropped).
    """

    def __init__(self, info: DataInfo, deterministic: bool = True, max_models: int = 64):
        self.info = info
        self.deterministic = deterministic
        self.max_models = max(1, int(max_models))
        self._models: OrderedDict[str, _Cached] = OrderedDict()  # architecture -> cached model
        self._configs: dict[tuple[str, str], tuple[str, float | None]] = {}  # config -> (architecture, lr)
        self._builders: dict[str, Callable] = {}
        self._tensors: OrderedDict[int, tuple[Any, Any]] = OrderedDict()  # id(array) -> (array, tensor)
        if deterministic:
            _configure_determinism()

    # ------------------------------------------------------------------ public API

    def initial_checkpoint(self, builder: str, params: dict, seed: int) -> bytes:
        """State of a freshly initialised model; the same seed gives the same bytes."""
        set_init_seed(int(seed))  # as keras.utils.set_random_seed, keeping the compiled loops' kernels
        model = self._build(builder, params)  # fresh: initializers draw from the seed just set
        ckpt = dump_checkpoint(model)
        self._adopt(builder, params, model)  # saves a build on this config's first hop
        return ckpt

    # shape: the config (builder, params), its state (ckpt), the rows (x, y), their order (seed), optional val.
    def train(self, builder: str, params: dict, ckpt: bytes, x, y, seed: int,
              val: tuple | None = None) -> tuple[bytes, dict]:
        """One sub-epoch over (x, y) in the order drawn from `seed`, starting from checkpoint `ckpt`; returns
        (new checkpoint, stats). With `val` = (x_val, y_val), the trained model is evaluated there too
        (stats["metrics"], stats["eval_s"]), without going through the checkpoint again.

        stats: loss, n, load_s, data_s, train_s, save_s, arch (architecture fingerprint), traced (the train
        loop was traced in this hop), eval_traced, and with `val`: metrics, eval_s."""
        t0 = time.perf_counter()
        cached = self._cached(builder, params)
        load_checkpoint(cached.model, ckpt)
        set_learning_rate(cached.model, self._configs[_params_key(builder, params)][1])
        try:
            loop = self._loop(cached)
        except Exception as exc:
            self._forget(builder, params)
            raise self._failed("training", exc) from exc
        traces = (loop.train_traces, loop.eval_traces)
        t1 = time.perf_counter()
        n = len(x)
        stats = {"loss": None, "n": n, "load_s": t1 - t0, "data_s": 0.0, "train_s": 0.0, "save_s": 0.0}
        new_state = ckpt  # an empty partition leaves the checkpoint as it is
        if n:
            streamed = hasattr(x, "train_chunks")  # a data/stream.PartitionStream: tensors per buffer
            xt, yt = (None, None) if streamed else (self._tensor(x, features=True), self._tensor(y))
            t2 = time.perf_counter()
            try:
                bs = int(params.get("batch_size", 64))
                loss = _train_stream(loop, x, seed, bs) if streamed else loop.train(xt, yt, row_order(n, seed), bs)
            except Exception as exc:
                self._forget(builder, params)
                raise self._failed("training", exc) from exc
            t3 = time.perf_counter()
            # A diverged config fails; its cached model stays (shared with other configs; every hop reloads it).
            if not math.isfinite(loss):
                raise ConfigFailed(f"loss became {loss} while training {builder} {params} on {n} rows "
                                   f"(learning rate too high, or non-finite values in the data)")
            weights, opt, seeds = _numpy_state(cached.model)
            # The last step can turn weights non-finite even when the epoch's mean loss was finite.
            if not all(np.isfinite(a).all() for a in weights if a.dtype.kind == "f"):
                raise ConfigFailed(f"loss became nan: weights turned non-finite while training {builder} {params}")
            new_state = _pack(weights, opt, seeds)
            loss = in_label_units({"loss": loss}, self.info.label_std, loss_name(cached.model))["loss"]
            stats.update(loss=loss, data_s=t2 - t1, train_s=t3 - t2, save_s=time.perf_counter() - t3)
        if val is not None:
            t4 = time.perf_counter()
            stats["metrics"] = self._evaluate(builder, params, loop, *val)
            stats["eval_s"] = time.perf_counter() - t4
        stats.update(arch=self._configs[_params_key(builder, params)][0], traced=loop.train_traces > traces[0],
                     eval_traced=loop.eval_traces > traces[1])
        return new_state, stats

    def evaluate(self, builder: str, params: dict, ckpt: bytes, x, y) -> dict:
        """{"loss", <compiled metrics by Keras name>, "n"} over (x, y); {"n": 0} for no rows."""
        if len(x) == 0:
            return {"n": 0}
        cached = self._cached(builder, params)
        load_checkpoint(cached.model, ckpt)
        try:
            loop = self._loop(cached)
        except Exception as exc:
            self._forget(builder, params)
            raise self._failed("evaluation", exc) from exc
        return self._evaluate(builder, params, loop, x, y)

    def evaluate_part(self, builder: str, params: dict, ckpt: bytes | None, chunks,
                      state: dict | None) -> tuple[dict, dict]:
        """Add the rows of `chunks` ((x, y) pairs) to a model's running validation state.

        `state`: {"vars": the metrics' variables, "n": rows} from the partitions evaluated before (None: none
        yet); `ckpt` None evaluates the model as the last train() left it. Returns (the new state, the
        metrics over all rows so far in label units, with "n"). Summing the metrics' own variables (totals,
        counts, confusion counts) over the partitions gives what one pass over all of them gives."""
        cached = self._cached(builder, params)
        if ckpt is not None:
            load_checkpoint(cached.model, ckpt)
        try:
            loop = self._loop(cached)
            loop.reset_metrics()
            if state:
                loop.set_metric_state(state["vars"])
            n, out = int(state["n"]) if state else 0, {}
            kept = isinstance(chunks, list)  # a worker's cached arrays: their tensors are kept, as in train()
            for x, y in chunks:
                if len(x):
                    xt, yt = ((self._tensor(x, features=True), self._tensor(y)) if kept else
                              (tf.constant(_features(x, self.info)), tf.constant(y, tf.float32)))
                    out = loop.evaluate_more(xt, yt)
                    n += len(x)
            if not out and n:
                out = {k: float(v) for k, v in cached.model.get_metrics_result().items()}
            new_state = {"vars": loop.metric_state(), "n": n}
        except Exception as exc:
            self._forget(builder, params)
            raise self._failed("evaluation", exc) from exc
        metrics = in_label_units(out, self.info.label_std, loss_name(loop.model)) if n else {}
        return new_state, {**metrics, "n": n}

    def config_of(self, builder: str, params: dict) -> tuple[str, float | None] | None:
        """(architecture, learning rate) of a config this trainer has built, for the driver to pass on."""
        return self._configs.get(_params_key(builder, params))

    def know_config(self, builder: str, params: dict, arch: str, lr: float | None) -> bool:
        """Take another worker's word (config_of there) for a config's architecture and learning rate, so
        its first hop here runs on the cached model of that architecture without building the config just
        to learn them. Only when that architecture is cached here; False (nothing changes) otherwise."""
        key = _params_key(builder, params)
        if key in self._configs or arch not in self._models:
            return False
        self._configs[key] = (arch, lr)
        return True

    def traces(self) -> dict[str, tuple[int, int]]:
        """{architecture: (train loop traces, eval loop traces)} of the cached models."""
        return {a: (c.loop.train_traces, c.loop.eval_traces) if c.loop else (0, 0) for a, c in self._models.items()}

    def keras_model(self, builder: str, params: dict, ckpt: bytes) -> keras.Model:
        """A fresh, uncached compiled model holding `ckpt` (e.g. to log to MLflow)."""
        model = self._build(builder, params)
        load_checkpoint(model, ckpt)
        return model

    def clear(self) -> None:
        """Drop every cached model and data tensor."""
        self._models.clear()
        self._configs.clear()
        self._tensors.clear()

    # ------------------------------------------------------------------ internals

    def _evaluate(self, builder: str, params: dict, loop: CompiledLoop, x, y) -> dict:
        n = len(x)
        if n == 0:
            return {"n": 0}
        try:
            out = loop.evaluate(self._tensor(x, features=True), self._tensor(y))
        except Exception as exc:
            self._forget(builder, params)
            raise self._failed("evaluation", exc) from exc
        out = in_label_units(out, self.info.label_std, loss_name(loop.model))
        out["n"] = n
        return out

    def _build(self, builder: str, params: dict) -> keras.Model:
        fn = self._builders.get(builder)
        if fn is None:
            fn = self._builders[builder] = import_builder(builder)  # SpecError: environment, not this config
        try:
            model = fn(dict(params), self.info)
        except Exception as exc:
            raise self._failed(f"building {builder}", exc) from exc
        if not isinstance(model, keras.Model) or getattr(model, "optimizer", None) is None:
            raise ConfigFailed(f"{builder} {params} did not return a compiled keras.Model")
        try:
            _ensure_built(model, self.info)
        except Exception as exc:
            raise self._failed(f"building {builder}", exc) from exc
        return model

    def _adopt(self, builder: str, params: dict, model: keras.Model) -> _Cached:
        """Record the config's architecture and learning rate; cache `model` unless its architecture is cached."""
        key = _params_key(builder, params)
        arch = architecture_key(builder, model) or "config:" + hashlib.sha256(repr(key).encode()).hexdigest()[:16]
        self._configs[key] = (arch, learning_rate_of(model))
        cached = self._models.get(arch)
        if cached is None:
            cached = self._models[arch] = _Cached(model)
        self._models.move_to_end(arch)
        while len(self._models) > self.max_models:
            self._models.popitem(last=False)
        return cached

    def _cached(self, builder: str, params: dict) -> _Cached:
        known = self._configs.get(_params_key(builder, params))
        cached = self._models.get(known[0]) if known else None
        if cached is None:  # a config new to this worker (or evicted): build it once to learn its architecture
            return self._adopt(builder, params, self._build(builder, params))
        self._models.move_to_end(known[0])
        return cached

    def _model(self, builder: str, params: dict) -> keras.Model:
        """The cached model that runs this config's hops."""
        return self._cached(builder, params).model

    def _loop(self, cached: _Cached) -> CompiledLoop:
        if cached.loop is None:
            model = cached.model
            x, y = _dummy_batch(self.info)
            model_inputs(model, x, self.info.feature_spans)  # SpecError naming a model input no column fills
            declared = _declared_inputs(model)
            routes = input_columns(model, self.info.feature_spans) if len(declared) > 1 else {}
            loop = CompiledLoop(model, self.info.input_shape, route(model, self.info.feature_spans, declared, routes))
            loop.build(x, y)
            cached.loop = loop
        return cached.loop

    def _tensor(self, a, features: bool = False):
        """`a` as a float32 tensor, converted once per array object (the worker keeps its arrays)."""
        hit = self._tensors.get(id(a))
        if hit is not None and hit[0] is a:
            self._tensors.move_to_end(id(a))
            return hit[1]
        arr = np.asarray(a, dtype=np.float32)
        if features:
            arr = arr.reshape((len(arr),) + tuple(self.info.input_shape))
        tensor = _as_tensor(arr)
        self._tensors[id(a)] = (a, tensor)
        while len(self._tensors) > _MAX_TENSORS:
            self._tensors.popitem(last=False)
        return tensor

    def _forget(self, builder: str, params: dict) -> None:
        # A config that raised (an OOM especially) frees its architecture's model; the next hop rebuilds it.
        known = self._configs.pop(_params_key(builder, params), None)
        if known:
            self._models.pop(known[0], None)

    @staticmethod
    def _failed(what: str, exc: BaseException) -> ConfigFailed:
        if isinstance(exc, ConfigFailed):
            return exc
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if _is_oom(exc):
            return ConfigFailed(f"out of memory while {what} ({exc.__class__.__name__}: {msg})")
        return ConfigFailed(f"{what} raised {exc.__class__.__name__}: {msg}")
