"""The Cerebro-API port of the dummy example, end to end on local Spark (2 configs, 1 epoch)."""
import importlib.util
import math
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.spark
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "cerebro_api"


def load_example(name):
    """Import an example script by path (examples/ is not a package), as a user would run it."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_dummy_example(tmp_path, monkeypatch):
    monkeypatch.setenv("CEREBRO_HOME", str(tmp_path / "home"))  # isolated MLflow db
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    ex = load_example("dummy_model_selection")

    result, out = ex.main(store_path=str(tmp_path / "store"), num_workers=2, num_epochs=1, rows=600,
                          lrs=(0.01, 1e-5), batch_sizes=(32,), register=False)
    assert set(result.metrics) == {"m000", "m001"}
    for m, h in result.metrics.items():
        assert {"train_loss", "val_loss", "val_acc"} <= set(h)
        assert len(h["val_acc"]) == 1 and all(math.isfinite(v) for v in h["val_acc"])
    # accuracy is maximised: the best model has the highest val_acc (the original picked the minimum)
    best = max(result.metrics, key=lambda m: result.metrics[m]["val_acc"][-1])
    assert result.best_model.model_id == best
    assert result.best_model.params["lr"] == 0.01
    rows = out.select("label", "label_predicted").collect()
    assert rows and all(0.0 <= r["label_predicted"] <= 1.0 for r in rows)
    assert result.get_history() == result.metrics[best]
    # tracked in MLflow like the spec path
    from mlflow import MlflowClient

    from cerebro_ops.mlflow.tracking import PARENT_TAG, RUN_ID_TAG
    client = MlflowClient(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("cerebro-cerebro_api")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{result.run_id}'")
    parents = [r for r in runs if PARENT_TAG not in r.data.tags]
    assert len(parents) == 1 and len(runs) == 3  # the parent and one child per config
