"""How much a run prints: quiet by default, everything with ``--verbose`` (or CEREBRO_VERBOSE=1).

Quiet keeps our own lines (cerebro_ops INFO: one line per hop and per evaluation), the progress bar, warnings
and errors, and silences the libraries underneath: Spark logs at ERROR without stage progress bars,
TensorFlow's C++ logs off (TF_CPP_MIN_LOG_LEVEL=3, which only works if set before TensorFlow is imported, so
the driver sets it first and Spark's Python workers get it in their environment), the ``tensorflow`` and
``absl`` Python loggers at ERROR (tf.function retracing warnings), MLflow at WARNING and Keras' progress bars
off. Verbose restores them all: INFO logs everywhere, Spark WARN, TensorFlow's own logs.

Pure: no TensorFlow or Spark import here.
"""
from __future__ import annotations

import logging
import os
import sys
import tempfile
from contextlib import contextmanager

VERBOSE_ENV = "CEREBRO_VERBOSE"
TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_QUIET_LOGGERS = ("tensorflow", "absl")
# Lines TensorFlow's native code prints while its libraries load, before its C++ log level is applied (so
# TF_CPP_MIN_LOG_LEVEL cannot hide them): the oneDNN notice, on CPUs with AVX-512 and others.
_LOAD_NOTICES = (b"oneDNN custom operations are on", b"All log messages before absl::InitializeLog() is called")


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes")


def configure(verbose: bool) -> None:
    """Set the output level of a command-line run: this process now, Spark and its workers when they start.
    Call before TensorFlow or Spark is imported."""
    os.environ[VERBOSE_ENV] = "1" if verbose else "0"
    os.environ[TF_LOG_ENV] = "0" if verbose else "3"
    if not verbose:
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
        # MLflow draws a download bar per artifact fetch (the champion check loads models) and warns when
        # the venv has no pip to pin in the logged model's conda.yaml: noise for a command-line run.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("cerebro_ops").setLevel(logging.INFO)  # the hop lines, in both modes
    quiet_libraries()


def quiet_libraries() -> None:
    """In quiet mode: TensorFlow's C++ logs off unless the environment says otherwise (effective only before
    TensorFlow is imported), its Python loggers at ERROR, Keras' progress bars off (if Keras is loaded).
    Called by the driver and by every Spark Python worker."""
    if is_verbose():
        return
    os.environ.setdefault(TF_LOG_ENV, "3")
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    if "keras" in sys.modules:
        quiet_keras()


@contextmanager
def load_notices_hidden():
    """Quiet mode, around the first TensorFlow import: what the native code writes to stderr meanwhile is held
    back, and passed on afterwards without the load notices (anything else, a real error included, still
    shows). Verbose, or TensorFlow already loaded: nothing is held back."""
    if is_verbose() or "tensorflow" in sys.modules:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True)
                    if not any(notice in line for notice in _LOAD_NOTICES)]
            if kept:
                os.write(2, b"".join(kept))


def quiet_keras() -> None:
    """Keras prints progress bars for verbose='auto' calls (e.g. a library's predict); quiet, they go to the
    absl logger, which is at ERROR. Only where quiet was chosen explicitly (the CLI, Spark workers): Keras'
    setting is process-wide, and a notebook using the Python API keeps its own progress bars."""
    if os.environ.get(VERBOSE_ENV) != "0":
        return
    import keras

    keras.config.disable_interactive_logging()


def spark_log_level() -> str:
    return "WARN" if is_verbose() else "ERROR"


def worker_environment() -> dict[str, str]:
    """What Spark's Python workers need in their environment to follow the driver's level."""
    env = {VERBOSE_ENV: "1" if is_verbose() else "0"}
    if os.environ.get(TF_LOG_ENV):
        env[TF_LOG_ENV] = os.environ[TF_LOG_ENV]
    return env
