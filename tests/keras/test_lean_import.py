"""Keras imported with its optional extras deferred: they run on first use, and only then."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import types

import pytest

from cerebro_ops.keras.lean_import import deferring


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A module `lean_probe` that counts its runs in `lean_probe_runs.count`."""
    (tmp_path / "lean_probe_runs.py").write_text("count = 0\n")
    (tmp_path / "lean_probe.py").write_text("import lean_probe_runs\nlean_probe_runs.count += 1\nVALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("lean_probe", "lean_probe_runs"):
        sys.modules.pop(name, None)


def test_a_deferred_module_runs_once_on_first_use_not_on_import_or_metadata(probe):
    with deferring(("lean_probe",)):
        import lean_probe
    import lean_probe_runs

    assert lean_probe.__file__ == str(probe / "lean_probe.py")
    assert lean_probe.__name__ == "lean_probe" and "VALUE" not in lean_probe.__dict__
    assert lean_probe_runs.count == 0
    assert lean_probe.VALUE == 42
    assert lean_probe.VALUE == 42
    assert lean_probe_runs.count == 1
    assert type(lean_probe) is types.ModuleType


def test_threads_reading_a_deferred_module_at_once_run_it_once(probe):
    with deferring(("lean_probe",)):
        import lean_probe
    start, seen = threading.Barrier(8), []

    def read():
        start.wait()
        seen.append(lean_probe.VALUE)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    import lean_probe_runs

    assert seen == [42] * 8
    assert lean_probe_runs.count == 1


def test_a_module_that_is_not_installed_still_fails_its_import():
    with deferring(("lean_probe_not_installed",)), pytest.raises(ModuleNotFoundError):
        import lean_probe_not_installed  # noqa: F401


def test_a_deferred_module_that_fails_raises_on_first_use_and_is_not_kept(probe):
    (probe / "lean_probe.py").write_text("raise RuntimeError('broken on purpose')\n")
    with deferring(("lean_probe",)):
        import lean_probe
    with pytest.raises(RuntimeError, match="broken on purpose"):
        lean_probe.VALUE  # noqa: B018
    assert "lean_probe" not in sys.modules


def test_keras_imports_and_traces_without_running_its_extras_which_still_work(tmp_path):
    """In a new process (as a worker, the builder check or a champion load): importing the trainer and tracing
    an autograph function leave scikit-learn unimported and pyplot not run; reading them then works."""
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent("""
        import sys
        import cerebro_ops.keras.trainer  # noqa: F401
        import keras
        import tensorflow as tf

        @tf.function
        def absolute(x):
            if x > 0:
                return x
            return -x

        traced = float(absolute(tf.constant(-3.0)))
        before = ("sklearn" in sys.modules, "plot" in sys.modules["matplotlib.pyplot"].__dict__)
        classifier = keras.wrappers.SKLearnClassifier.__name__
        import matplotlib.pyplot as plt
        print(traced, before, classifier, "sklearn" in sys.modules, callable(plt.plot))
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split("\n")[-2] == "3.0 (False, False) SKLearnClassifier True True"
