"""Airflow test environment: a throw-away AIRFLOW_HOME, set before anything imports airflow."""
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_HOME = tempfile.mkdtemp(prefix="cerebro-airflow-home-")

AIRFLOW_ENV = {
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
}
for _k, _v in AIRFLOW_ENV.items():
    os.environ.setdefault(_k, _v)


def pytest_configure(config):
    config.addinivalue_line("markers", "airflow: needs apache-airflow (DAG parsing, operators, plugin)")


MINIMAL_SPEC = """\
name: {name}
data: {{source: /tmp/x.parquet, label: y, numeric: [a]}}
model: {{builder: "cerebro_ops.builders:mlp"}}
search: {{method: grid, space: {{learning_rate: [0.001, 0.01]}}}}
train: {{epochs: {epochs}}}
{extra}"""


def write_spec(directory: Path, stem: str, name: str | None = None, epochs: int = 3, extra: str = "") -> Path:
    p = directory / f"{stem}.yaml"
    p.write_text(MINIMAL_SPEC.format(name=name or stem, epochs=epochs, extra=extra))
    return p


@pytest.fixture
def minimal_spec_text():
    return MINIMAL_SPEC


def tpe_spec_text(name: str) -> str:
    """A TPE study of 6 configs in 3 batches of 2, 2 epochs each (its data is never read)."""
    return f"""\
name: {name}
data: {{source: /tmp/x.parquet, label: y, numeric: [a]}}
model: {{builder: "cerebro_ops.builders:mlp"}}
search: {{method: tpe, num_configs: 6, batch_size: 2, space: {{learning_rate: {{loguniform: [0.001, 0.1]}}}}}}
train: {{epochs: 2}}
"""
