"""Errors of our own: each names the field at fault and how to fix it."""
from __future__ import annotations


class CerebroError(Exception):
    """Base class for every error cerebro-ops raises on purpose."""


class SpecError(CerebroError):
    """A study spec (or trigger override) is invalid. Raised before any work starts."""

    def __init__(self, field: str, problem: str, fix: str):
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"spec field '{field}': {problem}. Fix: {fix}")


class ParamsError(SpecError):
    """A trigger Param (Airflow form / CLI override) is invalid."""

    def __init__(self, field: str, problem: str, fix: str):
        super().__init__(field, problem, fix)
        self.args = (f"trigger param '{field}': {problem}. Fix: {fix}",)

    def __str__(self) -> str:
        return self.args[0]


class DataError(CerebroError):
    """The data source does not match the spec."""

    def __init__(self, field: str, problem: str, fix: str):
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"data '{field}': {problem}. Fix: {fix}")


class StoreError(CerebroError):
    """A store path is invalid or a checkpoint is unusable."""


class StudyFailed(CerebroError):
    """Every config of the study failed."""


class ConfigFailed(CerebroError):
    """One config cannot go on (builder raised, loss NaN/inf, out of memory). Only that config stops."""
