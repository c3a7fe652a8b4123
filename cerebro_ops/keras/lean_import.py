"""Keras, imported without loading the optional extras it would import eagerly and a study never uses.

When matplotlib and scikit-learn are installed (MLflow's dependencies install both), `import keras` 3.15 loads
`matplotlib.pyplot` (for keras.visualization) and scikit-learn (keras.wrappers subclasses its estimators):
≈ 0.75 s of the ≈ 2.7 s that importing Keras and TensorFlow takes in a new process. Every cold path pays that
import: the driver's builder check (which prepare waits for), each host's Spark worker daemon, and every
process that loads a champion. Imported through `import_keras`, those two modules are created but run on first
use: `keras.wrappers.SKLearnClassifier` and `matplotlib.pyplot.plot` still work, and pay their import when
something first reads them.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import sys
import threading
from types import ModuleType

from cerebro_ops.import_gc import importing

# Modules Keras imports only to offer them: none of its model building, training or saving reads them.
DEFERRED = ("matplotlib.pyplot", "keras.wrappers")
# What the import system set before running a module. Reading these does not run it: TensorFlow's autograph
# reads every loaded module's __file__ at each trace, which would otherwise run both in every worker process.
_SET_BEFORE_RUN = frozenset({"__name__", "__file__", "__cached__", "__spec__", "__loader__", "__package__",
                             "__path__", "__class__", "__dict__"})

_IMPORTING = threading.Lock()
_RUNNING = threading.RLock()  # reentrant: a module that runs may read itself or another deferred one


class _NotYetRun(ModuleType):
    """A module whose code runs when an attribute beyond its import metadata is first read or written."""

    def __getattribute__(self, name):
        if name not in _SET_BEFORE_RUN:
            _run(self)
        return ModuleType.__getattribute__(self, name)

    def __setattr__(self, name, value):
        _run(self)
        ModuleType.__setattr__(self, name, value)

    def __delattr__(self, name):
        _run(self)
        ModuleType.__delattr__(self, name)


_now_running: set[int] = set()  # ids of the modules _run is running, read and written under _RUNNING


def _run(module: ModuleType) -> None:
    """Run `module` once. Other threads wait until it has run; its own code (this thread) reads it as it is."""
    with _RUNNING:
        if type(module) is not _NotYetRun or id(module) in _now_running:
            return
        loader = ModuleType.__getattribute__(module, "__loader__").loader
        module.__spec__.loader = loader
        ModuleType.__setattr__(module, "__loader__", loader)
        _now_running.add(id(module))
        try:
            loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module.__name__, None)  # as a failed import leaves it: the next import tries again
            raise
        finally:
            _now_running.discard(id(module))
            ModuleType.__setattr__(module, "__class__", ModuleType)


class _RunOnFirstUse(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__class__ = _NotYetRun


class _DeferredModules(importlib.abc.MetaPathFinder):
    """Finds `names` as the other finders do, with a loader that leaves each module to run on first use."""

    def __init__(self, names: tuple[str, ...]):
        self.names = frozenset(names)

    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = _RunOnFirstUse(spec.loader)
            return spec
        return None  # not installed: the importer's own `except ImportError` handles it, as without this


@contextlib.contextmanager
def deferring(names: tuple[str, ...]):
    """Inside the block, importing one of `names` creates it without running it; it runs on first use."""
    finder = _DeferredModules(names)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def import_keras() -> ModuleType:
    """`keras`, imported here (with DEFERRED run on first use) unless this process imported it already."""
    with _IMPORTING:
        if "keras" not in sys.modules:
            with importing(), deferring(DEFERRED):  # importing: no full collections meanwhile (import_gc.py)
                import keras  # noqa: F401
    return sys.modules["keras"]
