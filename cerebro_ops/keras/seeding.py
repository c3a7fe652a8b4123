"""Seeding a model's initialisation without emptying TensorFlow's kernel cache every time.

`keras.utils.set_random_seed` ends in `tf.random.set_seed`, which empties the eager context's caches so
that stateful random kernels restart their streams. That also drops the instantiated kernels of every
compiled train/eval loop in the process: the next hop of any config re-instantiates them (~0.1 s for a
small MLP's train loop, more for its eval loop). A worker draws an initial checkpoint for each config it
starts, so this cost came back once per config per worker.

The cache only matters for a global seed that was in force before: a stateful random kernel is cached under
its (global seed, op seed) attributes, so a new global seed never reaches an old kernel. So the caches are
emptied only when a seed repeats since they were last emptied (e.g. a retried first hop), or when something
else (a builder calling tf.random.set_seed) changed the global seed since this module set it: its seeds are
unknown here. The random draws are the same as with `keras.utils.set_random_seed` either way.
"""
from __future__ import annotations

import random

import numpy as np

_SEEDS_SET: list[int] = []  # the global seeds set here since the caches were last emptied; the last in force


def set_init_seed(seed: int) -> None:
    """Python, NumPy, Keras and TensorFlow seeded as `keras.utils.set_random_seed(seed)` seeds them."""
    import keras
    from tensorflow.python.eager import context

    seed = int(seed)
    ctx = context.context()
    keras_state = _keras_state()
    changed_elsewhere = not _SEEDS_SET or getattr(ctx, "_seed", None) != _SEEDS_SET[-1]
    settable = keras_state is not None and hasattr(ctx, "_seed") and hasattr(ctx, "_rng")
    if changed_elsewhere or seed in _SEEDS_SET or not settable:
        _SEEDS_SET[:] = [seed]  # the caches are emptied now: no kernel holds any other seed
        keras.utils.set_random_seed(seed)
        return
    _SEEDS_SET.append(seed)
    global_state, generator_key, seed_key = keras_state
    global_state.set_global_attribute(seed_key, seed)
    global_state.set_global_attribute(generator_key, None)  # recreated from the seed on first use
    random.seed(seed)
    np.random.seed(seed)
    # what tf.random.set_seed does in eager mode, minus TFE_ContextClearCaches (context._set_global_seed)
    ctx._seed = seed
    ctx._rng = random.Random(seed)


def _keras_state():
    """Keras' global seed attributes (private: another Keras version falls back to the public call)."""
    try:
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils import rng_utils
        return global_state, seed_generator.GLOBAL_SEED_GENERATOR, rng_utils.GLOBAL_RANDOM_SEED
    except (ImportError, AttributeError):
        return None
