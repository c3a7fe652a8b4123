"""The garbage collector while a process imports its big libraries, and the objects they leave behind.

TensorFlow with Keras, MLflow and pyspark create about half a million objects that live as long as the process.
CPython 3.11 runs a full (generation-2) collection each time its long-lived heap has grown by a quarter, so a
study's driver ran 8 full collections while the builder check imported TensorFlow and MLflow loaded beside it:
1.3 s of CPU, measured, that freed a few dozen objects. And each later full collection walks those objects
again: pyspark's daemon runs one in a reused Spark worker after every task (0.2 s each here).

Inside `importing()`, only young collections run (generations 0 and 1 still free short-lived cycles). When the
last thread leaves its block, what is alive then moves to the permanent generation (`gc.freeze`, which the
CPython docs recommend before a fork for the same reason: a forked worker neither walks nor copies those pages),
and full collections resume at their threshold, now over the objects made since.
"""
from __future__ import annotations

import contextlib
import gc
import threading

_LOCK = threading.Lock()
_inside = 0  # threads inside importing(), under _LOCK
_saved_full_threshold: int | None = None
NO_FULL_COLLECTIONS = 2**30  # gen-1 collections before a full one: never, during the imports


@contextlib.contextmanager
def importing():
    """Run the block (imports) without full collections; afterwards, freeze what is alive (see the module)."""
    global _inside, _saved_full_threshold
    with _LOCK:
        if _inside == 0:
            young0, young1, _saved_full_threshold = gc.get_threshold()
            gc.set_threshold(young0, young1, NO_FULL_COLLECTIONS)
        _inside += 1
    try:
        yield
    finally:
        with _LOCK:
            _inside -= 1
            if _inside == 0:
                gc.collect(1)  # the young garbage of the imports, so it is not frozen with them
                gc.freeze()
                young0, young1, _ = gc.get_threshold()
                gc.set_threshold(young0, young1, _saved_full_threshold)
