"""A cloudpickled estimator_gen_fn is unpickled only when its bytes match the sha256 its file is named by."""
from __future__ import annotations

import hashlib
import pickle

import pytest

cloudpickle = pytest.importorskip("cloudpickle")

from cerebro_ops.compat import keras as ck  # noqa: E402


class Marker:
    """Unpickling this runs code: it writes a marker file (what a swapped pickle would do)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def gen_fn(params):
    return params


@pytest.fixture(autouse=True)
def no_cache():
    ck._FNS.clear()
    yield
    ck._FNS.clear()


def test_a_pickle_matching_its_name_loads(tmp_path):
    blob = cloudpickle.dumps(gen_fn)
    path = tmp_path / f"{hashlib.sha256(blob).hexdigest()}.pkl"
    path.write_bytes(blob)
    assert ck.load_gen_fn(path.as_uri())({"a": 1}) == {"a": 1}


@pytest.mark.parametrize("name_of", [
    lambda good, bad: hashlib.sha256(good).hexdigest(),  # the file was swapped after it was written
    lambda good, bad: hashlib.sha256(good).hexdigest()[:16],  # the same with an earlier version's name
    lambda good, bad: "gen_fn",  # not named by a hash at all
])
def test_a_swapped_pickle_is_refused_before_it_runs(tmp_path, name_of):
    marker = tmp_path / "unpickled"
    good, bad = cloudpickle.dumps(gen_fn), pickle.dumps(Marker(str(marker)))
    path = tmp_path / f"{name_of(good, bad)}.pkl"
    path.write_bytes(bad)
    with pytest.raises(ValueError, match="not unpickled"):
        ck.load_gen_fn(path.as_uri())
    assert not marker.exists()
    # the check is what stops it: the same bytes under their own hash do run
    own = tmp_path / f"{hashlib.sha256(bad).hexdigest()}.pkl"
    own.write_bytes(bad)
    ck.load_gen_fn(own.as_uri())
    assert marker.exists()
