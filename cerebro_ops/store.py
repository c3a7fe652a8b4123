"""The store: the only thing the driver and the workers share.

A URI (file://, hdfs://, s3://, memory://) resolved with fsspec. Every path is confined to the store root;
writes go to a temporary name, then are renamed: atomic on a local disk and HDFS, so a reader never sees a
half-written file there. Object stores (s3://, gs://) have no rename: `mv` copies then deletes, and an object
appears only once its upload completes, so a reader still never sees half a file, but a crash mid-move can
leave a stray temporary object. Checkpoints are read back against the sha256 in their hop record either way.
"""
from __future__ import annotations

import hashlib
import json
import posixpath
import re
import uuid
from typing import Any

import fsspec

from cerebro_ops.core.errors import StoreError

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.=+\-]+$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Store:
    """A directory tree under a root URI."""

    def __init__(self, uri: str):
        self.uri = uri.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.uri)
        self.root = self.root.rstrip("/") or "/"

    def sub(self, *parts: str) -> "Store":
        """A store rooted at a confined sub-directory."""
        return Store(self.url(*parts))

    def path(self, *parts: str) -> str:
        """Filesystem path (no scheme) of a relative path; refuses anything that escapes the root."""
        segs: list[str] = []
        for part in parts:
            for seg in str(part).split("/"):
                if seg in ("", "."):
                    continue
                if seg == ".." or not _SEGMENT_RE.match(seg):
                    raise StoreError(f"store path segment {seg!r} is not allowed: paths must stay inside the "
                                     f"store root {self.uri} (letters, digits, '_', '-', '.', '=' only)")
                segs.append(seg)
        return posixpath.join(self.root, *segs) if segs else self.root

    def url(self, *parts: str) -> str:
        p = self.path(*parts)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        if protocol in ("file", "local"):
            return "file://" + p
        return f"{protocol}://{p.lstrip('/')}" if protocol != "memory" else f"memory://{p}"

    # ------------------------------------------------------------------ bytes
    def write_bytes(self, rel: str, data: bytes) -> None:
        target = self.path(rel)
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        with self.fs.open(tmp, "wb") as f:
            f.write(data)
        self.fs.mv(tmp, target)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open(self.path(rel), "rb") as f:
            return f.read()

    def exists(self, rel: str = "") -> bool:
        return self.fs.exists(self.path(rel))

    def listdir(self, rel: str = "") -> list[str]:
        """Names (not paths) directly under rel, sorted; temporary files excluded; [] if missing."""
        p = self.path(rel)
        if not self.fs.exists(p):
            return []
        names = [posixpath.basename(x.rstrip("/")) for x in self.fs.ls(p, detail=False)]
        return sorted(n for n in names if ".tmp-" not in n)

    def delete(self, rel: str) -> None:
        p = self.path(rel)
        if self.fs.exists(p):
            self.fs.rm(p, recursive=True)

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


def run_store(store_uri: str, study: str, run_id: str) -> Store:
    """The run-scoped store: concurrent runs of one study never share a file."""
    return Store(store_uri).sub(study, "runs", safe_run_id(run_id))


_MAPPED = re.compile(r".*-[0-9a-f]{64}$")


def safe_run_id(run_id: str) -> str:
    """Airflow run ids contain ':' and '+'; map them to store-safe names, deterministically and one to one.

    A mapped name carries the full sha256 of the run id (a prefix could be collided on purpose to share another
    run's directory); a run id that already looks like a mapped name is mapped too, so none can pose as one."""
    safe = re.sub(r"[^A-Za-z0-9_.=\-]", "_", run_id)
    if safe != run_id or _MAPPED.match(run_id):
        safe = f"{safe[:160]}-{sha256(run_id.encode())}"  # a file name stays under 255 bytes
    if not safe.strip(".") or safe in (".", ".."):
        raise StoreError(f"run id {run_id!r} is not usable as a store path")
    return safe
