"""Errors of our own: each names the field at fault and how to fix it."""
from __future__ import annotations


class CerebroError(Exception):
    """Base class for every error cerebro-ops raises on purpose."""


class FieldError(CerebroError):
    """An input is invalid: the message names the field, the problem and the fix."""

    what = "field"

    def __init__(self, field: str, problem: str, fix: str):
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.what} '{field}': {problem}. Fix: {fix}")


class SpecError(FieldError):
    """A study spec (or trigger override) is invalid. Raised before any work starts."""

    what = "spec field"


class ParamsError(SpecError):
    """A trigger Param (Airflow form / CLI override) is invalid."""

    what = "trigger param"


class DataError(FieldError):
    """The data source does not match the spec."""

    what = "data"


class ClusterError(FieldError):
    """The Spark application cannot run the epoch's workers, or they cannot reach the driver."""

    what = "cluster setting"


class StoreError(CerebroError):
    """A store path is invalid or a checkpoint is unusable."""


class StudyFailed(CerebroError):
    """Every config of the study failed."""


class ConfigFailed(CerebroError):
    """One config cannot go on (builder raised, loss NaN/inf, out of memory). Only that config stops."""
