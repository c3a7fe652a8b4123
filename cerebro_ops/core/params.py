"""Trigger-time Params (Airflow form, CLI overrides): one JSON schema, used by both.

:func:`trigger_params` is the schema of each Param (the Airflow form is built from it); :func:`validate_overrides`
validates a trigger's values against the same schema with ``jsonschema`` and turns the first violation into a
:class:`ParamsError` naming the param and the fix.

Pure (no Airflow import). Params are data, never code: values are type- and range-checked here and nothing is
imported or evaluated from them.
"""
from __future__ import annotations

from typing import Any, Mapping

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from cerebro_ops.core.errors import ParamsError
from cerebro_ops.core.source_policy import check_source_override
from cerebro_ops.core.search import searcher_for
from cerebro_ops.core.spec import OVERRIDABLE, StudySpec

SEED_MAX = 2**31 - 1
SOURCE_MAX_LEN = 1024
NO_CONTROL_CHARS = "^[^\\x00-\\x1f]*$"  # understood by Python's re and by the form's JavaScript


def trigger_params(spec: StudySpec) -> dict[str, dict]:
    """JSON-schema definition of each trigger Param (the keys of spec.OVERRIDABLE), defaults taken from the spec."""
    schemas = {
        "seed": {
            "type": "integer", "minimum": 0, "maximum": SEED_MAX, "default": spec.seed,
            "title": "Seed",
            "description": "Seed for config sampling, model visit orders and weight init.",
        },
        "epochs": {
            "type": "integer", "minimum": 1, "maximum": spec.train.epochs, "default": spec.train.epochs,
            "title": "Epochs",
            "description": f"Epochs to train this run (at most {spec.train.epochs}, the spec's train.epochs; "
                           "extra epoch tasks are skipped).",
        },
        # at most the spec's: a trigger may not multiply the study's MLflow runs and hops
        "num_configs": {
            "type": "integer", "minimum": 1, "maximum": spec.search.num_configs, "default": spec.search.num_configs,
            "title": "Number of configs",
            "description": f"Model configurations to sample from the search space (random/tpe; grid caps it), at "
                           f"most {spec.search.num_configs}, the spec's search.num_configs. "
                           "TPE: at most as many batches as the spec's num_configs makes.",
        },
        "source": {
            "type": "string", "minLength": 1, "maxLength": SOURCE_MAX_LEN, "pattern": NO_CONTROL_CHARS,
            "default": spec.data.source,
            "title": "Data source",
            "description": "CSV or Parquet path/URI to train on (same columns as the spec's data section), "
                           "under the spec's data.allowed_sources (default: the directory of its data.source).",
        },
    }
    return {key: schemas[key] for key in OVERRIDABLE}


def trigger_schema(spec: StudySpec) -> dict:
    """The whole trigger as one JSON object: the Params above and no other key."""
    return {"type": "object", "properties": trigger_params(spec), "additionalProperties": False}


def validate_overrides(spec: StudySpec, raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check trigger overrides against :func:`trigger_schema`; return the cleaned dict.

    Raises :class:`ParamsError` naming the field for unknown keys, wrong types (a bool is not an integer, nor
    is a string of digits), out-of-range values (``num_configs`` above the spec's), a ``source`` outside the
    spec's allow-list (source_policy.py), and (TPE) more batches than the spec's plan has. ``None``
    values are dropped (= use the spec); strings are stripped; 2.0 is the integer 2, as in JSON schema.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ParamsError("<params>", f"must be a mapping, got {type(raw).__name__}",
                          "pass overrides as key/value pairs, e.g. {\"epochs\": 2}")
    values = {k: v.strip() if isinstance(v, str) else v for k, v in raw.items() if v is not None}
    schema = trigger_schema(spec)
    errors = list(Draft202012Validator(schema).iter_errors(values))
    if errors:
        order = list(values)
        first = min(errors, key=lambda e: order.index(_field(e, schema)) if _field(e, schema) in order else -1)
        raise _params_error(first, schema)
    out = {k: int(v) if schema["properties"][k]["type"] == "integer" else v for k, v in values.items()}
    if "source" in out:
        check_source_override(spec.data.source, spec.data.allowed_sources, out["source"])
    _check_batches(spec, out)
    return out


def _field(error: ValidationError, schema: dict) -> str:
    if error.validator == "additionalProperties":
        return next(str(k) for k in error.instance if k not in schema["properties"])
    return str(error.path[0]) if error.path else "<params>"


def _params_error(error: ValidationError, schema: dict) -> ParamsError:
    """Our message (the param, the problem, the fix) for one jsonschema violation."""
    key = _field(error, schema)
    if error.validator == "additionalProperties":
        return ParamsError(key, "is not a known param", f"use one of {', '.join(schema['properties'])}")
    s, value, rule = schema["properties"][key], error.instance, error.validator
    if s["type"] == "integer":
        if rule == "type":
            return ParamsError(key, f"must be an integer, got {type(value).__name__} {value!r}",
                               f"write a whole number in [{s['minimum']}, {s['maximum']}] without quotes")
        return ParamsError(key, f"{value} is out of range", f"use an integer in [{s['minimum']}, {s['maximum']}]")
    if rule == "type":
        return ParamsError(key, f"must be a string, got {type(value).__name__} {value!r}",
                           "write a path or URI as text")
    if rule == "minLength":
        return ParamsError(key, "is empty", f"give a path or URI, or leave the default {s['default']!r}")
    if rule == "maxLength":
        return ParamsError(key, f"is {len(value)} characters long", f"use at most {s['maxLength']} characters")
    if rule == "pattern":
        return ParamsError(key, "contains control characters", "write a plain path or URI")
    return ParamsError(key, error.message, "see the Param's description in the trigger form")


def _batch_count(spec: StudySpec, num_configs: int) -> int:
    return searcher_for(spec.with_overrides(num_configs=num_configs)).num_batches


def _check_batches(spec: StudySpec, overrides: dict[str, Any]) -> None:
    """A run may not need more batches than the plan (DAG) built from the spec has: with TPE's automatic
    batch size, fewer configs can mean more batches (9 configs: 3 batches of 3; 8: 4 of 2)."""
    if "num_configs" not in overrides:
        return
    n, planned = overrides["num_configs"], _batch_count(spec, spec.search.num_configs)
    need = _batch_count(spec, n)
    if need <= planned:
        return
    fits = [k for k in range(1, spec.search.num_configs + 1) if _batch_count(spec, k) <= planned]
    below = max(k for k in fits if k < n)
    above = [k for k in fits if k > n]
    hint = f"{below} or {above[0]}" if above else f"at most {below}"
    raise ParamsError("num_configs", f"{n} configs make {need} {spec.search.method.upper()} batches; "
                      f"the DAG of this spec has {planned}",
                      f"use {hint} configs, or change search.num_configs / search.batch_size in the spec")
