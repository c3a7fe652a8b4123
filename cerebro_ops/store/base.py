"""The store interface: a directory tree under a root URI, the only thing the driver and the workers share.

Every relative path is confined to the root here, in the base class, so that it holds for every backend;
a backend implements only the primitives on paths that are already confined. Writes are atomic (a reader
sees the old bytes or the new ones), and checkpoints are read back against the sha256 in their hop record.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import posixpath
import re
from abc import ABC, abstractmethod
from typing import Any, BinaryIO, Iterable

from cerebro_ops.core.errors import StoreError
from cerebro_ops.store.schemes import BACKENDS, SCHEMES, scheme_of

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.=+\-]+$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def backend_for(uri: str) -> type["Store"]:
    """The Store class serving the URI's scheme; StoreError for a scheme (or a plain path) it does not know."""
    target = BACKENDS.get(scheme_of(uri) or "")
    if target is None:
        raise StoreError(f"store {uri!r} has an unsupported scheme: use one of "
                         f"{', '.join(s + '://' for s in SCHEMES)}")
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


class Store(ABC):
    """A directory tree under a root URI. ``Store(uri)`` builds the backend that serves the URI's scheme."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "Store":
        # Store(uri) picks the backend; unpickling calls __new__ on the backend class itself with no arguments
        if cls is Store:
            cls = backend_for(args[0] if args else kwargs["uri"])
        return super().__new__(cls)

    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")
        self.root = "/"  # the backend's path of the root (no scheme); set by the backend

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    # ------------------------------------------------------------------ paths (confined)
    def rel(self, *parts: str) -> str:
        """The relative path of parts ('' for the root); refuses anything that escapes the root."""
        segs: list[str] = []
        for part in parts:
            part = str(part)
            if part.startswith(("/", "\\")):
                raise StoreError(f"store path {part!r} is absolute: paths must stay inside the store root {self.uri}")
            for seg in part.split("/"):
                if seg in ("", "."):
                    continue
                if seg == ".." or not _SEGMENT_RE.match(seg):
                    raise StoreError(f"store path segment {seg!r} is not allowed: paths must stay inside the "
                                     f"store root {self.uri} (letters, digits, '_', '-', '.', '=' only)")
                segs.append(seg)
        return "/".join(segs)

    def path(self, *parts: str) -> str:
        """The backend's path (no scheme) of a relative path: what arrow_fs() opens."""
        rel = self.rel(*parts)
        return posixpath.join(self.root, rel) if rel else self.root

    def url(self, *parts: str) -> str:
        """The URI of a relative path: what sub-stores are built from (engines get engine_url)."""
        rel = self.rel(*parts)
        return f"{self.uri}/{rel}" if rel else self.uri

    def engine_url(self, *parts: str) -> str:
        """The URI Spark and Petastorm open: they resolve it themselves, so a store that lives only in this
        process cannot be handed to them."""
        if self.process_local:
            raise StoreError(f"{self.uri} lives only in this process: Spark and Petastorm cannot open it "
                             "(read it through arrow_fs(), or use a file://, hdfs:// or s3:// store)")
        return self.url(*parts)

    def sub(self, *parts: str) -> "Store":
        """A store rooted at a confined sub-directory, served by the same backend."""
        return type(self)(self.url(*parts))

    # ------------------------------------------------------------------ backend primitives
    @property
    @abstractmethod
    def process_local(self) -> bool:
        """True when the tree lives only in this process (an in-memory store): Spark and Petastorm cannot
        open its URLs, so readers go through arrow_fs() instead."""

    @abstractmethod
    def arrow_fs(self):
        """A pyarrow filesystem that opens path(...) of this store (pyarrow datasets and Parquet reads)."""

    @abstractmethod
    def _write(self, path: str, data: bytes) -> None:
        """Write atomically: a reader never sees half of the bytes."""

    @abstractmethod
    def _read(self, path: str) -> bytes:
        """The bytes of a file; FileNotFoundError when it does not exist."""

    @abstractmethod
    def _open(self, path: str) -> BinaryIO:
        """A binary file object for a streaming read."""

    @abstractmethod
    def _exists(self, path: str) -> bool: ...

    @abstractmethod
    def _size(self, path: str) -> int:
        """Bytes of a file; FileNotFoundError when it does not exist."""

    @abstractmethod
    def _names(self, path: str) -> list[str]:
        """Names (not paths) directly under a directory; [] when it does not exist."""

    @abstractmethod
    def _delete(self, path: str) -> None:
        """Remove a file or a whole directory; nothing when it does not exist."""

    def _read_many(self, paths: list[str]) -> dict[str, bytes]:
        """path → bytes of the files that exist; a backend with batched reads overrides this."""
        out = {}
        for p in paths:
            try:
                out[p] = self._read(p)
            except FileNotFoundError:
                pass
        return out

    # ------------------------------------------------------------------ bytes
    def write_bytes(self, rel: str, data: bytes) -> None:
        self._write(self.path(rel), data)

    def read_bytes(self, rel: str) -> bytes:
        return self._read(self.path(rel))

    def read_many(self, rels: Iterable[str]) -> dict[str, bytes]:
        """rel → bytes of those that exist, in one batched read (object stores fetch in parallel)."""
        by_path = {self.path(r): r for r in rels}
        found = self._read_many(list(by_path))
        return {by_path[p]: found[p] for p in by_path if p in found}

    def open(self, rel: str) -> BinaryIO:
        """A binary file object for a streaming read; close it (use it as a context manager)."""
        return self._open(self.path(rel))

    def exists(self, rel: str = "") -> bool:
        return self._exists(self.path(rel))

    def size(self, rel: str) -> int:
        return self._size(self.path(rel))

    def listdir(self, rel: str = "") -> list[str]:
        """Names (not paths) directly under rel, sorted; temporary files excluded; [] if missing."""
        return sorted(n for n in self._names(self.path(rel)) if ".tmp-" not in n)

    def delete(self, rel: str) -> None:
        self._delete(self.path(rel))

    # ------------------------------------------------------------------ json
    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())

    def read_json(self, rel: str, default: Any = None) -> Any:
        if not self.exists(rel):
            if default is not None:
                return default
            raise StoreError(f"{self.url(rel)} does not exist")
        return json.loads(self.read_bytes(rel))

    # ------------------------------------------------------------------ checksummed blobs
    def write_blob(self, rel: str, data: bytes) -> str:
        """Atomic write; returns the sha256 to record beside it (hop record)."""
        self.write_bytes(rel, data)
        return sha256(data)

    def read_blob(self, rel: str, expected_sha256: str | None) -> bytes:
        data = self.read_bytes(rel)
        if expected_sha256 and sha256(data) != expected_sha256:
            raise StoreError(f"checksum mismatch for {self.url(rel)}: the file is corrupt or half-written")
        return data
