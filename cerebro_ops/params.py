"""Trigger-time Params (Airflow form, CLI overrides): their JSON-schema and their validation.

Pure (no Airflow import). Params are data, never code: values are type- and range-checked here and
nothing is imported or evaluated from them.
"""
from __future__ import annotations

from typing import Any, Mapping

from .errors import ParamsError
from .spec import MAX_CONFIGS, StudySpec

SEED_MAX = 2**31 - 1
SOURCE_MAX_LEN = 1024


def trigger_params(spec: StudySpec) -> dict[str, dict]:
    """JSON-schema definition of each trigger Param, defaults taken from the spec."""
    return {
        "seed": {
            "type": "integer", "minimum": 0, "maximum": SEED_MAX, "default": spec.seed,
            "title": "Seed",
            "description": "Seed for config sampling, model visit orders and weight init.",
        },
        "epochs": {
            "type": "integer", "minimum": 1, "maximum": spec.train.epochs, "default": spec.train.epochs,
            "title": "Epochs",
            "description": f"Epochs to train this run (at most {spec.train.epochs}, the spec's train.epochs; "
                           "extra epoch tasks become no-ops).",
        },
        "num_configs": {
            "type": "integer", "minimum": 1, "maximum": MAX_CONFIGS, "default": spec.search.num_configs,
            "title": "Number of configs",
            "description": "Model configurations to sample from the search space (random/tpe; grid caps it).",
        },
        "source": {
            "type": "string", "maxLength": SOURCE_MAX_LEN, "default": spec.data.source,
            "title": "Data source",
            "description": "CSV or Parquet path/URI to train on (same columns as the spec's data section).",
        },
    }


def validate_overrides(spec: StudySpec, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check trigger overrides against :func:`trigger_params`; return the cleaned dict.

    Raises :class:`ParamsError` naming the field for unknown keys, wrong types (a bool is not an integer,
    nor is a string of digits) and out-of-range values. ``None`` values are dropped (= use the spec).
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ParamsError("<params>", f"must be a mapping, got {type(raw).__name__}",
                          "pass overrides as key/value pairs, e.g. {\"epochs\": 2}")
    schema = trigger_params(spec)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in schema:
            raise ParamsError(str(key), "is not a known param", f"use one of {', '.join(schema)}")
        if value is None:
            continue
        s = schema[key]
        if s["type"] == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamsError(key, f"must be an integer, got {type(value).__name__} {value!r}",
                                  f"write a whole number in [{s['minimum']}, {s['maximum']}] without quotes")
            if not s["minimum"] <= value <= s["maximum"]:
                raise ParamsError(key, f"{value} is out of range",
                                  f"use an integer in [{s['minimum']}, {s['maximum']}]")
            out[key] = int(value)
        else:  # string
            if not isinstance(value, str):
                raise ParamsError(key, f"must be a string, got {type(value).__name__} {value!r}",
                                  "write a path or URI as text")
            value = value.strip()
            if not value:
                raise ParamsError(key, "is empty", f"give a path or URI, or leave the default {s['default']!r}")
            if len(value) > s["maxLength"]:
                raise ParamsError(key, f"is {len(value)} characters long",
                                  f"use at most {s['maxLength']} characters")
            if any(ord(c) < 32 for c in value):
                raise ParamsError(key, "contains control characters", "write a plain path or URI")
            out[key] = value
    return out
