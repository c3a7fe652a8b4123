"""The store contract, the same tests for every backend: a local directory (file://) and fsspec's in-memory
filesystem (memory://)."""
from __future__ import annotations

import pickle
import subprocess
import sys
import uuid

import pytest

from cerebro_ops.core.errors import StoreError
from cerebro_ops.store import SCHEMES, Store, filesystem_for, sha256


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path):
    if request.param == "file":
        yield Store((tmp_path / "root").as_uri())
        return
    root = f"memory://contract-{uuid.uuid4().hex}"
    yield Store(root)
    fs, path = filesystem_for(root)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def test_bytes_round_trip_and_overwrite_leave_no_temporary_file(store):
    store.write_bytes("a/b/c.bin", b"first")
    store.write_bytes("a/b/c.bin", b"second")
    assert store.read_bytes("a/b/c.bin") == b"second"
    assert store._names(store.path("a/b")) == ["c.bin"]  # the temporary name was renamed away
    assert store.size("a/b/c.bin") == 6


def test_reading_a_missing_file_raises_file_not_found(store):
    with pytest.raises(FileNotFoundError):
        store.read_bytes("nope.bin")


def test_open_streams_a_file(store):
    store.write_bytes("big.bin", bytes(range(256)) * 4)
    with store.open("big.bin") as f:
        assert f.read(3) == b"\x00\x01\x02"
        f.seek(256)
        assert f.read(2) == b"\x00\x01"


def test_json_round_trip_default_and_missing(store):
    store.write_json("state.json", {"b": [1, 2.5, None], "a": "x"})
    assert store.read_json("state.json") == {"a": "x", "b": [1, 2.5, None]}
    assert store.read_json("other.json", default=[]) == []
    with pytest.raises(StoreError, match="does not exist"):
        store.read_json("other.json")


def test_blob_returns_its_sha256_and_a_mismatch_is_refused(store):
    data = b"\x00checkpoint" * 100
    digest = store.write_blob("ckpt/m1.bin", data)
    assert digest == sha256(data)
    assert store.read_blob("ckpt/m1.bin", digest) == data
    assert store.read_blob("ckpt/m1.bin", None) == data  # no recorded sha256: not checked
    store.write_bytes("ckpt/m1.bin", data[:-1])  # a truncated file
    with pytest.raises(StoreError, match="checksum mismatch"):
        store.read_blob("ckpt/m1.bin", digest)


def test_listdir_names_sorted_without_temporary_files(store):
    for rel in ("d/b.json", "d/a.json", "d/sub/x.json"):
        store.write_bytes(rel, b"{}")
    store._write(store.path("d/c.json.tmp-0123"), b"")  # a write that crashed before its rename
    assert store.listdir("d") == ["a.json", "b.json", "sub"]
    assert store.listdir("missing") == []
    assert store.listdir() == ["d"]


def test_exists_and_delete(store):
    store.write_bytes("x/y/z.bin", b"1")
    store.write_bytes("x/keep.bin", b"2")
    assert store.exists("x/y/z.bin") and store.exists("x/y") and store.exists()
    assert not store.exists("x/none.bin")
    store.delete("x/y")  # a whole directory
    assert not store.exists("x/y/z.bin") and not store.exists("x/y")
    assert store.read_bytes("x/keep.bin") == b"2"
    store.delete("x/y")  # already gone: nothing happens
    store.delete("x/keep.bin")
    assert store.listdir("x") == []


def test_read_many_keys_by_relative_path_and_omits_missing(store):
    store.write_bytes("hops/e1/a.json", b"A")
    store.write_bytes("hops/e1/b.json", b"B")
    got = store.read_many(["hops/e1/a.json", "hops/e1/b.json", "hops/e1/gone.json"])
    assert got == {"hops/e1/a.json": b"A", "hops/e1/b.json": b"B"}
    assert store.read_many([]) == {}


@pytest.mark.parametrize("rel", ["..", "../x", "a/../../x", "a/..", "/etc/passwd", "/", "\\x", "a\\b",
                                 "s3://bucket/x", "a b", "a/%2e%2e"])
def test_paths_outside_the_root_are_refused(store, rel):
    for op in (store.read_bytes, store.exists, store.listdir, store.delete, store.url, store.path, store.sub,
               lambda r: store.write_bytes(r, b"x"), lambda r: store.write_json(r, {}),
               lambda r: store.read_blob(r, None), store.open, store.size, lambda r: store.read_many([r])):
        with pytest.raises(StoreError):
            op(rel)
    assert store.listdir() == []  # nothing was written anywhere


def test_a_sub_store_is_confined_and_shares_the_files(store):
    sub = store.sub("study", "runs", "r1")
    assert type(sub) is type(store)
    assert sub.uri == store.url("study/runs/r1")
    sub.write_json("state.json", {"ok": True})
    assert store.read_json("study/runs/r1/state.json") == {"ok": True}
    assert Store(sub.url("state.json").rsplit("/", 1)[0]).read_json("state.json") == {"ok": True}
    with pytest.raises(StoreError):
        sub.read_bytes("../r2/state.json")
    with pytest.raises(StoreError):
        sub.sub("..")
    sub.delete("")  # the whole sub-tree, its root included
    assert not store.exists("study/runs/r1") and store.exists("study/runs")


def test_url_and_path_name_the_same_file(store):
    scheme = store.uri.split("://")[0]
    assert store.url("a", "b.json") == f"{store.uri}/a/b.json" and store.url() == store.uri
    assert store.url("a", "b.json").startswith(f"{scheme}://")
    assert store.path("a", "./b.json") == store.path("a/b.json") == f"{store.path()}/a/b.json"
    store.write_bytes("a/b.json", b"1")
    with store.arrow_fs().open_input_stream(store.path("a/b.json")) as f:
        assert f.read() == b"1"


def test_a_store_survives_pickling(store):
    store.write_bytes("p.bin", b"pickled")
    again = pickle.loads(pickle.dumps(store))
    assert type(again) is type(store) and again.uri == store.uri
    assert again.read_bytes("p.bin") == b"pickled"


def test_engines_get_a_url_only_from_a_store_they_can_open(store):
    if store.uri.startswith("memory://"):
        assert store.process_local
        with pytest.raises(StoreError, match="only in this process"):
            store.engine_url("data")
    else:
        assert not store.process_local
        assert store.engine_url("data", "train") == store.url("data/train")


@pytest.mark.parametrize("uri", ["ftp://host/x", "/tmp/plain/path", "relative/path", "", "http://x"])
def test_a_store_uri_needs_a_supported_scheme(uri):
    with pytest.raises(StoreError, match="unsupported scheme"):
        Store(uri)


def test_the_spec_accepts_exactly_the_store_schemes(tmp_path):
    from cerebro_ops.core.errors import SpecError
    from cerebro_ops.core.spec import _parse_runtime

    assert SCHEMES == ("file", "hdfs", "s3", "s3a", "gs", "abfs", "memory")
    assert _parse_runtime({"store": "memory://st"}, "s", 2).store == "memory://st"
    with pytest.raises(SpecError, match="unsupported scheme") as exc:
        _parse_runtime({"store": "ftp://host/st"}, "s", 2)
    assert "hdfs://" in str(exc.value) and "memory://" in str(exc.value)


def test_core_spec_and_the_store_interface_import_no_filesystem():
    code = ("import sys, cerebro_ops.core.spec, cerebro_ops.store; "
            "assert 'fsspec' not in sys.modules, 'fsspec imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=__file__.rsplit("/tests/", 1)[0])
