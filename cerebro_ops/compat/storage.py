"""`cerebro.storage` equivalent: a store is a URI prefix (any scheme cerebro-ops' store supports)."""
from __future__ import annotations

from pathlib import Path


class PrefixStore:
    """Cerebro's `Store` base class: a location given as a path or URI. (cerebro_ops.store.Store is the one
    that reads and writes; this only names where.)"""

    def __init__(self, prefix_path: str, **kwargs):
        if not prefix_path:
            raise ValueError("prefix_path is empty: give a directory path or a URI")
        self.prefix_path = str(prefix_path)
        self.uri = self._to_uri(self.prefix_path)

    @staticmethod
    def _to_uri(p: str) -> str:
        return p if "://" in p else Path(p).expanduser().resolve().as_uri()

    def get_full_path(self, *parts: str) -> str:
        return "/".join([self.uri.rstrip("/"), *parts])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prefix_path!r})"


class LocalStore(PrefixStore):
    """A local (or NFS) directory."""


class HDFSStore(PrefixStore):
    """An HDFS prefix such as hdfs://namenode:9000/tmp/cerebro (any scheme in cerebro_ops.store.SCHEMES works)."""

    def __init__(self, prefix_path: str, host: str | None = None, port: int | None = None, **kwargs):
        if "://" not in str(prefix_path) and host:
            prefix_path = f"hdfs://{host}{':' + str(port) if port else ''}/{str(prefix_path).lstrip('/')}"
        super().__init__(prefix_path, **kwargs)
