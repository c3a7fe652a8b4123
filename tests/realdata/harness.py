"""One study on a corpus table through the CLI code path (`study.run`), and read access to what it left:
the split as raw rows and as encoded features (aligned row for row), the selected Keras model rebuilt from
its checkpoint, and the registered champion as an MLflow pyfunc. Used by the tests and benchmarks/realdata.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from tests.study_files import RunFiles

from .corpus import Table

BUILDER = "cerebro_ops.builders:mlp"
EPOCHS = 4
WORKERS = 2
# 2 configs: the learning rate is what matters most for a 4-epoch run.
SPACE = {"hidden_units": [64], "learning_rate": [0.003, 0.01], "batch_size": [32]}


def study_spec(table: Table, csv: Path, tmp: Path, *, epochs: int = EPOCHS, space: dict | None = None,
               seed: int = 0) -> dict:
    return {
        "name": table.name,
        "description": table.notes,
        "seed": seed,
        "data": table.data_spec(csv.resolve()),
        "model": {"builder": BUILDER},
        "search": {"method": "grid", "space": space or SPACE},
        "train": {"epochs": epochs, "workers": WORKERS, "metric": table.metric, "direction": table.direction},
        "runtime": {"store": (tmp / "store").resolve().as_uri(),
                    "tracking_uri": f"sqlite:///{(tmp / 'mlflow.db').resolve()}",
                    "experiment": f"realdata-{table.name}"},
    }


@dataclass
class RealRun(RunFiles):
    table: Table
    csv: Path
    spec_path: Path
    spec: object
    run_id: str
    result: dict
    wall_s: float
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def frame(self) -> pd.DataFrame:
        """The table as a user reads it: pandas.read_csv of the CSV the study ran on."""
        if "frame" not in self._cache:
            self._cache["frame"] = pd.read_csv(self.csv)
        return self._cache["frame"]

    @property
    def meta(self) -> dict:
        return self.state["meta"]

    @property
    def data_url(self) -> str:
        return self.store.url("data")

    def raw(self, split: str) -> pd.DataFrame:
        """The split's rows as the user has them, in the prepared order."""
        key = ("raw", split)
        if key not in self._cache:
            from cerebro_ops.data.reader import load_raw_split
            self._cache[key] = load_raw_split(self.data_url, split, self.meta)
        return self._cache[key]

    def prepared(self, split: str):
        """(x, y) of the split as encoded for the model, aligned row for row with raw(split)."""
        key = ("prepared", split)
        if key not in self._cache:
            from tests.prepared_rows import prepared_split
            self._cache[key] = prepared_split(self.data_url, split, self.meta["input_shape"])
        return self._cache[key]

    def best(self) -> dict:
        return self.result["leaderboard"][0]

    def selected_keras_model(self):
        """The selected config's Keras model, rebuilt from its final checkpoint (what register logs)."""
        if "keras" not in self._cache:
            from cerebro_ops.keras.trainer import HopTrainer, data_info

            state = self.state
            row = self.best()
            assert row["model_id"] == state["selected"]
            trainer = HopTrainer(data_info(state["meta"]), deterministic=True)
            blob = self.store.read_blob(row["ckpt"]["ckpt"], row["ckpt"]["sha256"])
            self._cache["keras"] = trainer.keras_model(self.spec.model_builder, state["configs"][row["model_id"]],
                                                       blob)
        return self._cache["keras"]

    def champion_pyfunc(self):
        if "pyfunc" not in self._cache:
            import mlflow.pyfunc

            from cerebro_ops.mlflow.tracking import Tracker
            tracker = Tracker(self.spec.runtime.tracking_uri, self.spec.runtime.experiment)
            with tracker.mlflow_context():
                self._cache["pyfunc"] = mlflow.pyfunc.load_model(f"models:/{self.spec.name}@champion")
        return self._cache["pyfunc"]


def run_table_study(table: Table, tmp: Path, spark, **spec_kw) -> RealRun:
    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec

    csv = table.write(tmp / "data")
    spec_path = tmp / f"{table.name}.yaml"
    spec_path.write_text(yaml.safe_dump(study_spec(table, csv, tmp, **spec_kw), sort_keys=False,
                                        allow_unicode=True), encoding="utf-8")
    spec = load_spec(spec_path)
    run_id = f"{table.name}-run-1"
    t0 = time.time()
    result = study.run(spec, run_id=run_id, spark=spark)
    return RealRun(table, csv, spec_path, spec, run_id, result, time.time() - t0)
