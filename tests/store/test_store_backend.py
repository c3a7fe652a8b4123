"""A backend is one class: the base class gives it confinement, json, blobs and sub-stores; registering its
scheme makes Store(uri) build it."""
from __future__ import annotations

import io

import pytest

from cerebro_ops.core.errors import StoreError
from cerebro_ops.store import Store, schemes, sha256

_FILES: dict[str, bytes] = {}


class DictStore(Store):
    """Files in a dict keyed by path: the primitives only."""

    def __init__(self, uri: str):
        super().__init__(uri)
        self.root = "/" + uri.split("://", 1)[1].strip("/")

    process_local = True

    def arrow_fs(self):
        raise NotImplementedError

    def _write(self, path, data):
        _FILES[path] = bytes(data)

    def _read(self, path):
        if path not in _FILES:
            raise FileNotFoundError(path)
        return _FILES[path]

    def _open(self, path):
        return io.BytesIO(self._read(path))

    def _exists(self, path):
        return path in _FILES or any(p.startswith(path + "/") for p in _FILES)

    def _size(self, path):
        return len(self._read(path))

    def _names(self, path):
        return sorted({p[len(path) + 1:].split("/")[0] for p in _FILES if p.startswith(path + "/")})

    def _delete(self, path):
        for p in [p for p in _FILES if p == path or p.startswith(path + "/")]:
            del _FILES[p]


@pytest.fixture
def dict_scheme(monkeypatch):
    monkeypatch.setitem(schemes.BACKENDS, "dict", f"{__name__}:DictStore")
    _FILES.clear()
    yield
    _FILES.clear()


def test_a_registered_backend_serves_its_scheme_through_the_interface(dict_scheme):
    store = Store("dict://root")
    assert type(store) is DictStore
    sub = store.sub("study", "runs")
    assert type(sub) is DictStore and sub.uri == "dict://root/study/runs"
    digest = sub.write_blob("ckpt/m.bin", b"weights")
    sub.write_json("r1/state.json", {"a": 1})
    assert _FILES["/root/study/runs/ckpt/m.bin"] == b"weights" and digest == sha256(b"weights")
    assert store.read_json("study/runs/r1/state.json") == {"a": 1}
    assert store.listdir("study/runs") == ["ckpt", "r1"] and store.size("study/runs/ckpt/m.bin") == 7
    assert store.read_many(["study/runs/ckpt/m.bin", "nope"]) == {"study/runs/ckpt/m.bin": b"weights"}
    with pytest.raises(StoreError, match="checksum mismatch"):
        sub.read_blob("ckpt/m.bin", sha256(b"other"))
    with pytest.raises(StoreError, match="only in this process"):
        store.engine_url("data")
    for bad in ("../x", "/root/x", "a/../../x"):
        with pytest.raises(StoreError):
            sub.write_bytes(bad, b"x")
    sub.delete("r1")
    assert store.listdir("study/runs") == ["ckpt"]


def test_an_unregistered_scheme_is_refused():
    with pytest.raises(StoreError, match="unsupported scheme"):
        Store("dict://root")
