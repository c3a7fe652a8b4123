"""The registry's champion as data, never as code.

Whoever can write the MLflow registry can point alias ``champion`` at any model, and loading a pyfunc runs
its Python code. So the champion check never loads the pyfunc: it downloads only the two files of a raw-rows
model (the Keras file and the encoding JSON), checks their sha256 against the tags this project wrote when it
registered that version, and loads them as data (Keras safe mode, ``Encoding.from_meta``). A version without
those tags, or whose files do not match them, is never loaded.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping

REGISTERED_BY_TAG = "cerebro.registered_by"
REGISTERED_BY = "cerebro-ops"
KERAS_SHA_TAG = "cerebro.keras_sha256"
ENCODING_SHA_TAG = "cerebro.encoding_sha256"
# Where serving.log_model puts the two files inside the logged model (MLflow's `artifacts/<file name>`).
KERAS_FILE = "artifacts/model.keras"
ENCODING_FILE = "artifacts/encoding.json"
_FILES = {KERAS_SHA_TAG: KERAS_FILE, ENCODING_SHA_TAG: ENCODING_FILE}

# download(path inside the model, local directory) -> the local file
Download = Callable[[str, str], str]


class UntrustedChampion(Exception):
    """The champion version cannot be loaded as data: why, in one line (it goes into the decision)."""


@dataclass(frozen=True)
class ChampionData:
    keras_model: Any
    encoding: Any


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def registration_tags(download: Download, tmp_dir: str) -> dict[str, str]:
    """The tags that let a later run load this version as data: the marker and both files' sha256.
    Empty when the model is not a raw-rows model (it has not both files): such a version is never loaded."""
    try:
        hashes = {tag: file_sha256(download(rel, tmp_dir)) for tag, rel in _FILES.items()}
    except Exception as exc:  # noqa: BLE001 - not a raw-rows model: no hashes, so it will never be loaded
        return {}
    return {REGISTERED_BY_TAG: REGISTERED_BY, **hashes}


def load_verified(version: str, tags: Mapping[str, str], download: Download, tmp_dir: str) -> ChampionData:
    """The champion's Keras model and encoding, after checking both files against the registered hashes.
    Raises UntrustedChampion (nothing loaded) for a version this project did not register or whose files
    changed since."""
    if tags.get(REGISTERED_BY_TAG) != REGISTERED_BY or not all(tags.get(t) for t in _FILES):
        raise UntrustedChampion(f"v{version} was not registered by cerebro-ops with the sha256 of its files "
                                f"(tags {REGISTERED_BY_TAG}, {KERAS_SHA_TAG}, {ENCODING_SHA_TAG}); it was not loaded")
    paths = {}
    for tag, rel in _FILES.items():
        try:
            paths[tag] = download(rel, tmp_dir)
        except Exception as exc:  # noqa: BLE001 - a missing file is an unusable champion, said in the decision
            raise UntrustedChampion(f"v{version} has no {rel} ({type(exc).__name__}); it was not loaded") from None
        if file_sha256(paths[tag]) != tags[tag]:
            raise UntrustedChampion(f"v{version}'s {rel} does not match the sha256 recorded when it was "
                                    "registered; it was not loaded")
    return ChampionData(keras_model=_load_keras(paths[KERAS_SHA_TAG]), encoding=_load_encoding(paths[ENCODING_SHA_TAG]))


def _load_keras(path: str):
    from cerebro_ops.keras.lean_import import import_keras

    keras = import_keras()

    # safe_mode: a Lambda layer's bytecode (the one way a .keras file carries code) is refused, not run
    return keras.saving.load_model(path, safe_mode=True)


def _load_encoding(path: str):
    from cerebro_ops.core.encoding import Encoding

    with open(path, encoding="utf-8") as f:
        return Encoding.from_meta(json.load(f))

