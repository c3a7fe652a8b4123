"""Initial checkpoints are seeded as keras.utils.set_random_seed seeds them, without emptying TensorFlow's
kernel cache for every new config (which made the next hop of every config re-instantiate its loop)."""
from __future__ import annotations

import keras
import pytest
from tensorflow.python import pywrap_tfe

from cerebro_ops.keras import seeding
from cerebro_ops.keras.trainer import DataInfo, HopTrainer, dump_checkpoint

INFO = DataInfo(input_shape=(4,), task="binary", num_classes=2)
RANDOM = "tests.builders_for_tests:tf_random_init"


def _reference(seed: int) -> bytes:
    """The initial state keras.utils.set_random_seed gives (it empties the caches every time)."""
    from tests.builders_for_tests import tf_random_init

    keras.utils.set_random_seed(seed)
    return dump_checkpoint(tf_random_init({}, INFO))


@pytest.fixture(autouse=True)
def fresh_seed_record(monkeypatch):
    """What this module knows of the seeds set before, as in a new worker process (other tests in this process
    may have seeded too)."""
    monkeypatch.setattr(seeding, "_SEEDS_SET", [])


@pytest.fixture()
def clears(monkeypatch):
    """Counts the times TensorFlow's eager caches are emptied."""
    calls = []
    real = pywrap_tfe.TFE_ContextClearCaches
    monkeypatch.setattr(pywrap_tfe, "TFE_ContextClearCaches", lambda h: (calls.append(1), real(h))[1])
    return calls


def test_initial_states_equal_keras_seeding_and_caches_stay(clears):
    refs = {s: _reference(s) for s in (11, 12, 13)}
    assert len(set(refs.values())) == 3  # the seeds do draw different states
    t = HopTrainer(INFO)
    clears.clear()
    got = [t.initial_checkpoint(RANDOM, {}, s) for s in (11, 12, 13)]
    assert got == [refs[11], refs[12], refs[13]]
    # the first call empties the caches (the reference set seeds this module did not); then new seeds do not
    assert len(clears) == 1


def test_a_repeated_seed_restarts_the_random_streams(clears):
    t = HopTrainer(INFO)
    first = t.initial_checkpoint(RANDOM, {}, 21)
    t.initial_checkpoint(RANDOM, {}, 22)
    clears.clear()
    again = t.initial_checkpoint(RANDOM, {}, 21)  # a retried first hop: the stateful kernel must start over
    assert again == first and len(clears) == 1


def test_a_seed_set_elsewhere_empties_the_caches(clears):
    import tensorflow as tf

    t = HopTrainer(INFO)
    t.initial_checkpoint(RANDOM, {}, 31)
    tf.random.set_seed(32)  # e.g. a builder seeding TensorFlow itself
    tf.random.normal((2,), seed=3)  # a kernel now holds seed 32's stream
    clears.clear()
    assert t.initial_checkpoint(RANDOM, {}, 32) == _reference(32)
    assert len(clears) == 2  # this module's call, then the reference's


def test_fallback_without_the_private_seed_attributes(monkeypatch, clears):
    monkeypatch.setattr(seeding, "_keras_state", lambda: None)  # another Keras: its private names moved
    t = HopTrainer(INFO)
    t.initial_checkpoint(RANDOM, {}, 41)
    clears.clear()
    state = t.initial_checkpoint(RANDOM, {}, 42)
    assert state == _reference(42) and len(clears) == 2
