"""End to end, in-process: a 2-config x 2-epoch MOP study on the dummy data, then what it left behind
(leaderboard, MLflow runs/metrics/artifacts, hop log invariants, registry champion), a champion/challenger
re-run, and the `cerebro-ops` CLI (leaderboard, validate) as a subprocess.
"""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from .conftest import PY, REPO, check_hop_invariants, small_spec, write_yaml

pytestmark = [pytest.mark.slow, pytest.mark.spark]

METRICS = ("train_loss", "val_loss", "val_accuracy")


def _tracker(spec):
    from cerebro_ops.mlflow.tracking import Tracker
    return Tracker(spec.runtime.tracking_uri, spec.runtime.experiment)


def _cli(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([PY, "-m", "cerebro_ops.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_leaderboard_ranked_and_finished(study_run):
    rows = study_run.result["leaderboard"]
    assert len(rows) == 2
    assert [r["status"] for r in rows] == ["FINISHED", "FINISHED"]
    values = [r["val_accuracy"] for r in rows]
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in values), values
    assert values == sorted(values, reverse=True), f"not ranked by val_accuracy desc: {values}"
    assert [r["rank"] for r in rows] == [1, 2]
    assert study_run.store.read_json("leaderboard.json") == json.loads(json.dumps(rows, default=str))
    state = study_run.state
    assert state["epochs_done"] == 2
    assert state["selected"] == rows[0]["model_id"]


def test_mlflow_parent_children_metrics_artifacts(study_run):
    from mlflow import MlflowClient

    from cerebro_ops.mlflow.tracking import PARENT_TAG, RUN_ID_TAG

    spec = study_run.spec
    client = MlflowClient(tracking_uri=spec.runtime.tracking_uri)
    exp = client.get_experiment_by_name(spec.runtime.experiment)
    everything = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in everything if r.data.tags.get(RUN_ID_TAG) == study_run.run_id
               and PARENT_TAG not in r.data.tags]
    assert len(parents) == 1, f"{len(parents)} parent runs for {study_run.run_id}"

    parent, children = study_run.mlflow_runs()
    assert parent.info.run_id == parents[0].info.run_id
    assert parent.info.status == "FINISHED"
    assert len(children) == 2
    configs = study_run.state["configs"]
    for child in children:
        assert child.data.tags[PARENT_TAG] == parent.info.run_id
        model_id = child.data.tags["cerebro.model_id"]
        assert set(configs[model_id]) <= set(child.data.params), (configs[model_id], child.data.params)
        assert child.info.status == "FINISHED"
        for metric in METRICS:
            hist = client.get_metric_history(child.info.run_id, metric)
            assert sorted(m.step for m in hist) == [1, 2], f"{model_id} {metric}: {hist}"
            assert all(np.isfinite(m.value) for m in hist)

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"hoplog.jsonl", "leaderboard.json"} <= artifacts, artifacts


def test_hop_log_invariants(study_run):
    records = study_run.hop_records()
    state = study_run.state
    configs = sorted(state["configs"])
    check_hop_invariants(records, configs, workers=2, epochs=2)
    # exactly the expected number of train hops, no duplicates
    train_ok = [r for r in records if r["status"] == "ok" and r["kind"] == "train"]
    assert len(train_ok) == len(configs) * 2 * 2


def test_champion_loads_and_predicts(study_run):
    import mlflow.pyfunc

    from cerebro_ops.data.reader import load_raw_split
    from tests.prepared_rows import prepared_split

    spec = study_run.spec
    tracker = _tracker(spec)
    champ = tracker.champion(spec.name)
    assert champ is not None, "no champion alias after the first run"
    reg = study_run.result["registered"]
    assert reg["promoted"] is True and reg["version"] == champ["version"]
    assert champ["tags"]["cerebro.run_id"] == study_run.run_id

    # The champion scores the user's raw rows (label column present: ignored) in the label's own values,
    # and agrees exactly with the Keras model on the prepared (encoded) validation rows.
    meta, url = study_run.state["meta"], study_run.store.url("data")
    raw = load_raw_split(url, "val", meta)
    with tracker.mlflow_context():
        model = mlflow.pyfunc.load_model(f"models:/{spec.name}@champion")
    pred = model.predict(raw)
    assert list(pred.columns) == ["prediction", "probability"] and len(pred) == len(raw)
    assert set(pred["prediction"]) <= set(meta["label_classes"])
    x_val, _ = prepared_split(url, "val", meta["input_shape"])
    keras_model = tracker.load_champion_data(champ).keras_model
    np.testing.assert_array_equal(pred["probability"], keras_model.predict(x_val, batch_size=8192, verbose=0)[:, 0])
    assert (pred["prediction"] == raw[meta["label"]]).mean() == pytest.approx(reg["challenger"], abs=1e-6)


def test_second_run_champion_challenger(study_run, spark):
    """A second run of the same spec with a new run id: the register step decides champion vs challenger."""
    from cerebro_ops import study
    from cerebro_ops.core.spec import load_spec

    spec = load_spec(study_run.spec_path)
    tracker = _tracker(spec)
    before = tracker.champion(spec.name)
    result = study.run(spec, run_id="itest-run-2", spark=spark)
    decision = result["registered"]
    # the decision is exactly the comparison on the shared validation rows (val_accuracy, max)
    assert decision["promoted"] is (decision["champion"] is None or decision["challenger"] > decision["champion"])
    assert decision["reason"]
    after = tracker.champion(spec.name)
    if decision["promoted"]:
        assert after["version"] == decision["version"] != before["version"]
        assert after["tags"]["cerebro.run_id"] == "itest-run-2"
        assert decision["champion"] is None or decision["challenger"] > decision["champion"]
    else:
        assert after["version"] == before["version"]
        assert decision["champion"] >= decision["challenger"]
        assert "does not beat" in decision["reason"]
    # the alias points to the version with the best recorded metric (val_accuracy, max)
    versions = tracker.client.search_model_versions(f"name='{spec.name}'")
    best = max(float(v.tags["cerebro.metric_value"]) for v in versions)
    assert after["metric"] == pytest.approx(best)
    state2 = study.load_state(spec, "itest-run-2")
    assert state2["registered"] == decision


def test_cli_leaderboard_prints_model_ids(study_run):
    proc = _cli("leaderboard", study_run.spec_path)  # latest run of the study; both runs share model ids
    assert proc.returncode == 0, proc.stderr
    assert "itest-run-" in proc.stdout, proc.stdout
    for model_id in study_run.state["configs"]:
        assert model_id in proc.stdout, proc.stdout
    assert "FINISHED" in proc.stdout and "val_accuracy" in proc.stdout


def test_cli_validate_bad_field_exits_2(study_run):
    raw = small_spec("itest_bad", study_run.data_path, study_run.tmp / "store", study_run.tmp / "mlflow.db")
    raw["train"]["direction"] = "sideways"
    bad = write_yaml(study_run.tmp / "bad.yaml", raw)
    proc = _cli("validate", bad, "--no-model-check", timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "train.direction" in proc.stderr, proc.stderr
