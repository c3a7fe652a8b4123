"""Which data a trigger may point a study at.

A trigger Param is typed by whoever may trigger the DAG, who is not trusted with everything the worker can
read. An overridden ``source`` must lie under one of the spec's ``data.allowed_sources`` (default: the
directory, or URI prefix, of the spec's own ``data.source``): same scheme and host, and a path under the
prefix after normalising (relative paths resolved against the working directory, symlinks and ``..``
resolved, so ``allowed/../elsewhere`` is elsewhere). Errors about an overridden source never quote its cells.

Pure: no fsspec, Spark or Airflow; nothing is read here.
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import re
from typing import Iterator, NamedTuple
from urllib.parse import urlsplit

from cerebro_ops.core.errors import DataError, ParamsError

# source.py's problems that name the path only (it does not exist, it is empty): kept as they are.
_NO_CELLS_QUOTED = (" does not exist (resolved to ", " has no rows")
# A scheme is at least two characters, so a Windows drive letter (C:\...) is a path.
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


class Location(NamedTuple):
    scheme: str  # "file" for a local path
    host: str    # bucket / namenode / "" for local
    parts: tuple[str, ...]  # normalised path segments

    def __str__(self) -> str:
        path = "/" + "/".join(self.parts)
        return path if self.scheme == "file" else f"{self.scheme}://{self.host}{path}"

    def under(self, prefix: "Location") -> bool:
        return (self.scheme, self.host) == (prefix.scheme, prefix.host) and \
            self.parts[:len(prefix.parts)] == prefix.parts


def location(source: str) -> Location:
    """``source`` (a path, relative to the working directory, or a URI) normalised for prefix comparison."""
    if _SCHEME_RE.match(source) and not source.lower().startswith("file://"):
        u = urlsplit(source)
        path = posixpath.normpath("/" + u.path.lstrip("/"))
        return Location(u.scheme.lower(), u.netloc.lower(), tuple(p for p in path.split("/") if p))
    path = urlsplit(source).path if source.lower().startswith("file://") else source
    real = os.path.realpath(os.path.abspath(path))
    return Location("file", "", tuple(p for p in real.split(os.sep) if p))


def default_allowed(spec_source: str) -> Location:
    """The directory (or URI prefix) holding the spec's own source."""
    loc = location(spec_source)
    return loc._replace(parts=loc.parts[:-1])


def allowed_locations(spec_source: str, allowed_sources: tuple[str, ...]) -> list[Location]:
    return [location(a) for a in allowed_sources] if allowed_sources else [default_allowed(spec_source)]


def check_source_override(spec_source: str, allowed_sources: tuple[str, ...], source: str) -> None:
    """Raise ParamsError('source') unless ``source`` lies under an allowed prefix."""
    if source == spec_source:
        return
    allowed = allowed_locations(spec_source, allowed_sources)
    if any(location(source).under(a) for a in allowed):
        return
    where = ", ".join(str(a) for a in allowed)
    default = "" if allowed_sources else " (the default: the directory of the spec's data.source)"
    raise ParamsError("source", f"is outside the data this study may read: {where}{default}",
                      "give a path or URI under one of those, or have the spec's author add its directory to "
                      "data.allowed_sources")


@contextlib.contextmanager
def no_values_in_errors(overridden: bool) -> Iterator[None]:
    """DataErrors about a source given at trigger time name the field only: their details can quote the file's
    cells, and task logs are read by more people than the file."""
    if not overridden:
        yield
        return
    try:
        yield
    except DataError as err:
        if err.field == "data.source" and any(p in err.problem for p in _NO_CELLS_QUOTED):
            raise
        raise DataError(err.field, "the source given at trigger time does not fit the spec (details are not "
                                   "shown: they can quote the file's values)",
                        "check the file with `cerebro-ops validate` on a spec whose data.source is that file, "
                        "as someone allowed to read it") from None
