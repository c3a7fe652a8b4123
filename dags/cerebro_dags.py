"""Airflow DAG file: one DAG per study spec in dags/specs/ (see cerebro_ops.airflow.dag_factory).

Cheap to parse: reads YAML and builds DAG objects; no Spark or TensorFlow import.
"""
import sys
from pathlib import Path

try:
    import cerebro_ops  # noqa: F401
except ImportError:  # running from a checkout: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cerebro_ops.airflow.dag_factory import build_dags  # noqa: E402

globals().update(build_dags(Path(__file__).parent / "specs"))
