"""The store on fsspec: file://, hdfs://, s3://, gs://, abfs:// and memory:// (tests, in-process runs).

Writes go to a temporary name, then are renamed: atomic on a local disk and HDFS, so a reader never sees a
half-written file there. Object stores (s3://, gs://) have no rename: `mv` copies then deletes, and an object
appears only once its upload completes, so a reader still never sees half a file, but a crash mid-move can
leave a stray temporary object. Checkpoints are read back against the sha256 in their hop record either way.
"""
from __future__ import annotations

import posixpath
import uuid
from typing import BinaryIO

import fsspec

from cerebro_ops.store.base import Store


def filesystem_for(uri: str):
    """(fsspec filesystem, path) of any URI, e.g. the user's data source outside the store."""
    return fsspec.core.url_to_fs(uri)


class FsspecStore(Store):
    def __init__(self, uri: str):
        super().__init__(uri)
        self.fs, root = filesystem_for(self.uri)
        self.root = root.rstrip("/") or "/"

    @property
    def protocol(self) -> str:
        return self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]

    @property
    def process_local(self) -> bool:
        return self.protocol == "memory"

    def arrow_fs(self):
        import pyarrow.fs as pafs

        if self.protocol in ("file", "local"):
            return pafs.LocalFileSystem()  # native: faster than going through Python for every read
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def _write(self, path: str, data: bytes) -> None:
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.fs.mv(tmp, path)

    def _read(self, path: str) -> bytes:
        with self.fs.open(path, "rb") as f:
            return f.read()

    def _read_many(self, paths: list[str]) -> dict[str, bytes]:
        if not paths:
            return {}
        # fsspec keys the result by its own form of each path; map them back to ours
        ours = {self.fs._strip_protocol(p): p for p in paths}
        found = self.fs.cat(paths, on_error="omit")
        return {ours.get(self.fs._strip_protocol(k), k): v for k, v in found.items()}

    def _open(self, path: str) -> BinaryIO:
        return self.fs.open(path, "rb")

    def _exists(self, path: str) -> bool:
        return self.fs.exists(path)

    def _size(self, path: str) -> int:
        return int(self.fs.size(path))

    def _names(self, path: str) -> list[str]:
        if not self.fs.exists(path):
            return []
        return [posixpath.basename(x.rstrip("/")) for x in self.fs.ls(path, detail=False)]

    def _delete(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)
