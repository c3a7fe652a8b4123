"""Seeds derived from the study seed: one per purpose (a model's init, a hop's shuffle, a TPE batch).

Pure: the driver, the workers and the search strategies all derive the same seed from the same parts.
"""
from __future__ import annotations

import zlib


def derive_seed(*parts) -> int:
    """A 31-bit seed from the parts' text: crc32, not hash(), so it is the same in every process and host."""
    return zlib.crc32(":".join(map(str, parts)).encode()) & 0x7FFFFFFF
