"""Credentials out of what is written for others to read (MLflow artifacts, log lines).

A `runtime.tracking_uri` (or store URI) may carry a password (`postgresql://user:secret@host/db`,
`?password=...`). The process needs it to connect; artifacts and logs are read by more people than the spec's
author, so they get the URI with the secret replaced by ``***``. Pure.
"""
from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]+):(?P<secret>[^@\s'\"/]+)@")
_QUERY = re.compile(r"(?P<head>[?&;](?:password|passwd|pwd|token|secret|access_key|secret_key)=)[^&;\s'\"]+",
                    re.IGNORECASE)
HIDDEN = "***"


def redact(text: str) -> str:
    """``text`` with the password of every URI in it (user:password@, ?password=) replaced by ***."""
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:{HIDDEN}@", text)
    return _QUERY.sub(lambda m: f"{m.group('head')}{HIDDEN}", text)
