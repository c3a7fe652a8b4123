"""The store: one interface (Store) every store path goes through, one class per backend.

``Store(uri)`` picks the backend for the URI's scheme (schemes.BACKENDS); importing this package does not
import fsspec, so pure modules can name the schemes and the types.
"""
from __future__ import annotations

import re

from cerebro_ops.core.errors import StoreError
from cerebro_ops.store.base import Store, backend_for, sha256
from cerebro_ops.store.schemes import SCHEMES, is_supported, scheme_of

__all__ = ["SCHEMES", "Store", "backend_for", "filesystem_for", "is_supported", "run_store", "safe_run_id",
           "scheme_of", "sha256"]


def filesystem_for(uri: str):
    """(filesystem, path) of a URI outside the store, e.g. the user's data source: read with the same
    filesystems the store uses."""
    from cerebro_ops.store.fsspec_store import filesystem_for as resolve

    return resolve(uri)


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
