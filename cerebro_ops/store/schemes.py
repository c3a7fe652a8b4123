"""The store URI schemes cerebro-ops supports, and the backend class that serves each.

Pure (no fsspec): core.spec validates runtime.store against this list without importing a filesystem.
A new backend is one Store subclass, named here for its schemes.
"""
from __future__ import annotations

import re

_FSSPEC = "cerebro_ops.store.fsspec_store:FsspecStore"

BACKENDS: dict[str, str] = {scheme: _FSSPEC for scheme in ("file", "hdfs", "s3", "s3a", "gs", "abfs", "memory")}
SCHEMES: tuple[str, ...] = tuple(BACKENDS)

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def scheme_of(uri: str) -> str | None:
    """The URI's scheme in lower case, or None for a plain path."""
    m = _SCHEME_RE.match(uri)
    return m.group(1).lower() if m else None


def is_supported(uri: str) -> bool:
    return scheme_of(uri) in BACKENDS
