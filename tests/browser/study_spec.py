"""The study the browser tests run for real (Spark, Keras, MLflow): the demo's shape, 4 configs x 3 epochs,
with an XSS-looking description and parameter value that the pages must show as text."""
from __future__ import annotations

from pathlib import Path

XSS_DESCRIPTION = "<script>alert(1)</script> synthetic study"
XSS_PARAM = '"><img src=x onerror=alert(1)>'

SPEC = """\
name: uidemo
description: '{description}'
seed: 0
data:
  source: {source}
  label: label
  task: binary
  numeric: [x1, x2, x3, x4]
  categorical: [color]
  validation_fraction: 0.2
model:
  builder: cerebro_ops.builders:mlp
search:
  method: random
  num_configs: 4
  space:
    learning_rate: {{loguniform: [0.001, 0.03]}}
    batch_size: {{choice: [32, 64, 128]}}
    hidden_units: {{choice: [16, 32]}}
    note: {{choice: ['{xss}']}}
train:
  epochs: 3
  workers: 2
  metric: val_accuracy
  direction: max
runtime:
  store: {store}
  tracking_uri: {tracking}
  experiment: cerebro-uidemo
"""


def write_spec(specs_dir: Path, source: Path, store: Path, tracking_db: Path) -> Path:
    specs_dir.mkdir(parents=True, exist_ok=True)
    path = specs_dir / "uidemo.yaml"
    path.write_text(SPEC.format(description=XSS_DESCRIPTION, source=source, store=store.as_uri(),
                                tracking=f"sqlite:///{tracking_db}", xss=XSS_PARAM.replace("'", "''")))
    return path
