"""MLflow adapter: nesting, idempotency, per-epoch metrics, artifacts, failure tolerance, registry champion."""
from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

from cerebro_ops.core.spec import parse_spec  # noqa: E402
from cerebro_ops.mlflow.tracking import PARENT_TAG, RUN_ID_TAG, Tracker, default_artifact_location  # noqa: E402
from .legacy_models import log_tensorflow_model  # noqa: E402

def make_spec(tmp_path):
    return parse_spec({
        "name": "track_demo",
        "seed": 7,
        "data": {"source": str(tmp_path / "d.csv"), "label": "y", "numeric": ["a", "b"]},
        "model": {"builder": "cerebro_ops.builders:mlp"},
        "search": {"method": "grid", "num_configs": 2, "space": {"lr": [0.1, 0.01]}},
        "train": {"epochs": 3, "workers": 2, "metric": "val_loss"},
    })


@pytest.fixture(scope="module")
def db_dir(tmp_path_factory):
    # One sqlite db per module: creating the MLflow schema costs seconds. Each test gets its own experiment.
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def uri(db_dir):
    return f"sqlite:///{db_dir}/mlflow.db"


@pytest.fixture
def experiment(request):
    return f"cerebro-{request.node.name}"


@pytest.fixture
def study(tmp_path, uri, experiment):
    """A parent with two children, three epochs each, c1 failed at epoch 2."""
    spec = make_spec(tmp_path)
    tr = Tracker(uri, experiment)
    parent = tr.start_study(spec, "manual__2024-01-01T00:00:00+00:00", {"airflow.dag_id": spec.dag_id})
    kids = {m: tr.start_config(parent, m, {"lr": lr, "units": [64, 32]}) for m, lr in (("c0", 0.1), ("c1", 0.01))}
    for epoch in (1, 2, 3):
        tr.log_epoch(kids["c0"], epoch, {"loss": 1.0 / epoch, "val_loss": 1.5 / epoch})
    tr.log_epoch(kids["c1"], 1, {"loss": 2.0, "val_loss": 2.5})
    tr.log_epoch(kids["c1"], 2, {"loss": float("nan"), "val_loss": np.float32("inf")})
    tr.end_config(kids["c0"], "FINISHED", {"cerebro.status": "completed"})
    tr.end_config(kids["c1"], "FAILED", {"cerebro.status": "failed", "cerebro.failure_reason": "nan loss",
                                          "pruned_at_epoch": 2})
    return spec, tr, parent, kids


def test_parent_children_params_metrics(study, uri):
    spec, tr, parent, kids = study
    c = MlflowClient(uri)
    p = c.get_run(parent)
    assert p.info.run_name == "track_demo-manual__2024-01-01T00:00:00+00:00"
    assert p.data.tags["cerebro.study"] == "track_demo"
    assert p.data.tags["cerebro.run_id"] == "manual__2024-01-01T00:00:00+00:00"
    assert p.data.tags["airflow.dag_id"] == "cerebro_track_demo"
    assert p.data.params == {"seed": "7", "epochs": "3", "workers": "2", "search_method": "grid",
                             "metric": "val_loss", "direction": "min", "num_configs": "2"}
    for m, cid in kids.items():
        r = c.get_run(cid)
        assert r.data.tags["mlflow.parentRunId"] == parent
        assert r.data.tags["cerebro.model_id"] == m
        assert r.info.run_name == m
        assert r.info.experiment_id == p.info.experiment_id
    assert c.get_run(kids["c0"]).data.params == {"lr": "0.1", "units": "[64, 32]"}
    hist = c.get_metric_history(kids["c0"], "val_loss")
    assert [(h.step, h.value) for h in sorted(hist, key=lambda h: h.step)] == [(1, 1.5), (2, 0.75), (3, 0.5)]
    children = c.search_runs([p.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'")
    assert {r.data.tags["cerebro.model_id"]: r.info.run_id for r in children} == kids
    # non-finite values are skipped, but noted
    c1 = c.get_run(kids["c1"])
    assert [h.step for h in c.get_metric_history(kids["c1"], "loss")] == [1]
    assert "loss=nan" in c1.data.tags["cerebro.nonfinite.e2"] and "val_loss=inf" in c1.data.tags["cerebro.nonfinite.e2"]


def test_end_config_failed_with_reason(study, uri):
    _, _, _, kids = study
    c = MlflowClient(uri)
    r = c.get_run(kids["c1"])
    assert r.info.status == "FAILED"
    assert r.data.tags["cerebro.failure_reason"] == "nan loss"
    assert r.data.tags["pruned_at_epoch"] == "2"
    assert c.get_run(kids["c0"]).info.status == "FINISHED"


def test_idempotent_start_study_and_config(study, uri, experiment):
    spec, tr, parent, kids = study
    tr.end_study(parent, "FAILED")
    # a fresh tracker (new process after an Airflow retry) finds the same runs
    tr2 = Tracker(uri, experiment)
    again = tr2.start_study(spec, "manual__2024-01-01T00:00:00+00:00", {"airflow.dag_id": spec.dag_id})
    assert again == parent
    assert tr2.start_config(parent, "c0", {"lr": 0.1, "units": [64, 32]}) == kids["c0"]
    assert tr2.start_config(parent, "c0", {"lr": 0.1, "units": [64, 32]}) == kids["c0"]
    assert tr.start_config(parent, "c1", {"lr": 0.01}) == kids["c1"]
    c = MlflowClient(uri)
    assert c.get_run(parent).info.status == "RUNNING"
    exp = c.get_experiment_by_name(experiment)
    run_tag = f"tags.`{RUN_ID_TAG}` = 'manual__2024-01-01T00:00:00+00:00'"
    runs = c.search_runs([exp.experiment_id], filter_string=run_tag)  # the parent and its two children
    assert sorted(r.info.run_id for r in runs) == sorted([parent, kids["c0"], kids["c1"]])
    assert len(c.search_runs([exp.experiment_id])) == 3
    # a different Airflow run id is a different parent
    other = tr2.start_study(spec, "scheduled__2024-01-02", {})
    assert other not in (None, parent)


def test_artifacts_and_best_metric(study, uri, db_dir, tmp_path):
    spec, tr, parent, kids = study
    leaderboard = [{"rank": 1, "model_id": "c0", "status": "FINISHED", "val_loss": 0.5, "params": {"lr": 0.1}},
                   {"rank": 2, "model_id": "c1", "status": "FAILED", "val_loss": 0.1, "params": {"lr": 0.01}}]
    hops = [{"model_id": "c0", "epoch": 1, "partition": w, "worker": w} for w in range(2)]
    tr.log_study(parent, "name: track_demo\n", leaderboard, hops, "val_loss")
    tr.end_study(parent, "FINISHED")
    c = MlflowClient(uri)
    run = c.get_run(parent)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["best_val_loss"] == 0.5
    names = {a.path for a in c.list_artifacts(parent)}
    assert {"spec.yaml", "leaderboard.json", "hoplog.jsonl", "leaderboard.csv"} <= names
    d = c.download_artifacts(parent, "", str(tmp_path / "dl"))
    lines = open(f"{d}/hoplog.jsonl").read().splitlines()
    assert [json.loads(x) for x in lines] == hops
    assert json.load(open(f"{d}/leaderboard.json")) == leaderboard
    assert open(f"{d}/spec.yaml").read() == "name: track_demo\n"
    # sqlite URIs keep artifacts beside the db
    assert run.info.artifact_uri.startswith((db_dir / "artifacts").as_uri())


def test_default_artifact_location():
    assert default_artifact_location("sqlite:////x/.cerebro/mlflow.db") == "file:///x/.cerebro/artifacts"
    assert default_artifact_location("http://mlflow:5000") is None
    assert default_artifact_location("sqlite:///:memory:") is None


def test_unreachable_server_never_raises(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    tr = Tracker("http://127.0.0.1:9", "down")
    spec = make_spec(tmp_path)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cerebro_ops.mlflow.tracking"):
        assert tr.start_study(spec, "r1", {}) is None
        assert tr.start_config("p", "c0", {"lr": 1}) is None
        assert tr.log_epoch("child", 1, {"loss": 0.1}) is None
        assert tr.end_config("child", "FINISHED") is None
        assert tr.log_study("p", "x", [], [], "val_loss") is None
        assert tr.end_study("p", "FINISHED") is None
        assert tr.record_decision("p", {"promoted": True, "reason": "x"}) is None
        # ids that were never created (tracking was down at start) make later calls quiet no-ops
        n = len(caplog.records)
        assert tr.log_epoch(None, 2, {"loss": 0.1}) is None and tr.end_config(None, "FAILED") is None
        assert len(caplog.records) == n
    assert time.monotonic() - t0 < 60
    assert any("start_study" in r.getMessage() for r in caplog.records)
    assert all(r.name == "cerebro_ops.mlflow.tracking" for r in caplog.records if "failed" in r.getMessage())


def test_keras_model_champion_roundtrip(study, uri):
    keras = pytest.importorskip("keras")
    from cerebro_ops.core.encoding import Encoding
    from tests.keras.test_serving import WIDTH, iris_like, meta_for

    _, tr, _, kids = study
    model_name = "track_demo"
    assert tr.champion(model_name) is None
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((WIDTH,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rows = iris_like(5, 0)
    meta = meta_for(rows)
    x = Encoding.from_meta(meta).encode(rows)
    model_uri = tr.log_raw_rows_model(kids["c0"], model, meta, rows.head(2))
    assert model_uri.startswith("models:/")

    version = tr.register_champion(model_name, model_uri, "val_loss", 0.5, {"cerebro.run_id": "r1"})
    champ = tr.champion(model_name)
    assert champ["version"] == version == "1"
    assert champ["metric"] == 0.5
    assert champ["run_id"] == kids["c0"]
    c = MlflowClient(uri)
    mv = c.get_model_version(model_name, version)
    assert mv.tags["cerebro.metric"] == "val_loss" and mv.tags["cerebro.run_id"] == "r1"
    # the logged model lives in the study's experiment, not MLflow's Default experiment
    assert c.get_logged_model(model_uri.split("/")[-1]).experiment_id == c.get_run(kids["c0"]).info.experiment_id

    before = mlflow.get_tracking_uri()
    with tr.mlflow_context():
        pyfunc = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
        pred = pyfunc.predict(rows)
    assert mlflow.get_tracking_uri() == before  # globals restored
    assert len(pred) == 5

    loaded = tr.load_champion_data(tr.champion(model_name)).keras_model
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    # a second registration moves the alias
    v2 = tr.register_champion(model_name, model_uri, "val_loss", 0.25, {})
    assert v2 == "2" and tr.champion(model_name)["version"] == "2" and tr.champion(model_name)["metric"] == 0.25


def test_champion_decision_tags(study, uri):
    """register_champion: metric, value, the version replaced and the reason; record_decision: the parent run."""
    keras = pytest.importorskip("keras")
    _, tr, parent, kids = study
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model_uri = log_tensorflow_model(tr, kids["c0"], model)
    v1 = tr.register_champion("decisions", model_uri, "val_accuracy", 0.88, {},
                              reason="promoted: no champion yet (val_accuracy 0.88 on this run's validation rows)")
    reason = "promoted: val_accuracy 0.91 > 0.88 of v1 on this run's validation rows"
    v2 = tr.register_champion("decisions", model_uri, "val_accuracy", 0.91, {"cerebro.run_id": "r2"},
                              replaced=v1, reason=reason)
    c = MlflowClient(uri)
    mv = c.get_model_version("decisions", v2)
    assert (v1, v2) == ("1", "2")
    assert mv.tags["cerebro.metric"] == "val_accuracy" and float(mv.tags["cerebro.metric_value"]) == 0.91
    assert mv.tags["cerebro.replaced_version"] == "1" and mv.tags["cerebro.decision"] == reason
    assert mv.description == reason and mv.tags["cerebro.run_id"] == "r2"
    assert c.get_model_version("decisions", v1).tags["cerebro.replaced_version"] == ""
    assert tr.champion("decisions")["version"] == "2"

    kept = {"model_id": "c1", "metric": "val_accuracy", "challenger": 0.85, "champion": 0.91, "promoted": False,
            "version": "2", "reason": "not promoted: challenger val_accuracy 0.85 does not beat 0.91 of v2 on this "
                                      "run's validation rows"}
    tr.record_decision(parent, kept)
    tags = c.get_run(parent).data.tags
    assert tags["cerebro.champion.promoted"] == "false"
    assert tags["cerebro.champion.decision"] == kept["reason"]
    assert tags["cerebro.champion.version"] == "2" and tags["cerebro.champion.metric"] == "val_accuracy"
    assert float(tags["cerebro.champion.challenger_value"]) == 0.85
    assert float(tags["cerebro.champion.champion_value"]) == 0.91

    # an encoded-tensor model is not a raw-rows model: no hashes were recorded for it, so it is never loaded
    # and the register step replaces such a champion
    from cerebro_ops.keras.champion_check import UntrustedChampion

    assert "cerebro.keras_sha256" not in mv.tags
    with pytest.raises(UntrustedChampion, match="v2 was not registered by cerebro-ops with the sha256 of its files"):
        tr.load_champion_data(tr.champion("decisions"))


def test_best_epoch_summary_sorts_by_best_not_last(study, uri):
    """best_<metric> and best_epoch (metric and tag) at step=epoch: the latest value is the best so far, so
    the runs table sorted by best_val_loss puts c1 (best epoch 1) before c0, whatever their last epoch."""
    _, tr, _, kids = study
    tr.log_best(kids["c0"], "val_loss", 0.6, 2, 2)
    tr.log_best(kids["c0"], "val_loss", 0.5, 3, 3)
    tr.log_best(kids["c1"], "val_loss", 0.4, 1, 2)
    c = MlflowClient(uri)
    r0, r1 = c.get_run(kids["c0"]), c.get_run(kids["c1"])
    assert r0.data.metrics["best_val_loss"] == 0.5 and r0.data.metrics["best_epoch"] == 3
    assert r0.data.tags["best_epoch"] == "3" and r1.data.tags["best_epoch"] == "1"
    assert [(h.step, h.value) for h in sorted(c.get_metric_history(kids["c0"], "best_epoch"), key=lambda h: h.step)] \
        == [(2, 2.0), (3, 3.0)]
    ranked = c.search_runs([r0.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{r0.data.tags['mlflow.parentRunId']}'",
                           order_by=["metrics.best_val_loss ASC"])
    assert [r.data.tags["cerebro.model_id"] for r in ranked] == ["c1", "c0"]


def test_checkpoint_artifact_and_hop_table(study, uri, tmp_path):
    from cerebro_ops.store import sha256
    from cerebro_ops.mlflow.tracking import HOP_TABLE, checkpoint_artifact

    _, tr, parent, kids = study
    blob = bytes(range(256)) * 40
    assert tr.log_checkpoint(kids["c0"], 2, blob, sha256(blob)) == checkpoint_artifact(2) == "checkpoints/epoch_2.ckpt"
    c = MlflowClient(uri)
    got = c.download_artifacts(kids["c0"], "checkpoints/epoch_2.ckpt", str(tmp_path / "ck"))
    assert open(got, "rb").read() == blob
    assert c.get_run(kids["c0"]).data.tags["cerebro.ckpt.e2.sha256"] == sha256(blob)

    rows = [{"unit": "c0/e1/train/p1", "epoch": 1, "partition": 1, "worker": 1, "seed": 11, "sha256": "ab",
             "mlflow_ckpt": None},
            {"unit": "c0/e1/train/p0", "epoch": 1, "partition": 0, "worker": 0, "seed": 12, "sha256": "cd",
             "mlflow_ckpt": f"runs:/{kids['c0']}/checkpoints/epoch_1.ckpt"}]
    tr.log_hop_table(parent, rows)
    tr.log_hop_table(parent, rows)  # a re-run of select does not append the rows a second time
    table = json.load(open(c.download_artifacts(parent, HOP_TABLE, str(tmp_path / "hops"))))
    assert table["columns"] == list(rows[0])
    assert [dict(zip(table["columns"], r)) for r in table["data"]] == rows
    logged = json.loads(c.get_run(parent).data.tags["mlflow.loggedArtifacts"])
    assert {"path": HOP_TABLE, "type": "table"} in logged


def test_an_epoch_result_is_one_batch_after_its_checkpoint(study, uri, tmp_path, monkeypatch):
    """log_epoch_result logs what log_epoch + log_best + log_checkpoint log, with one log_batch per call."""
    from cerebro_ops.store import sha256

    _, tr, _, kids = study
    batches = []
    real = tr.client.log_batch
    monkeypatch.setattr(tr.client, "log_batch", lambda *a, **k: (batches.append(k), real(*a, **k))[1])
    blob = b"state-of-epoch-2" * 100
    tr.log_epoch_result(kids["c0"], 2, {"train_loss": 0.3, "val_auc": float("nan")}, ("val_loss", 0.45, 1),
                        (blob, sha256(blob)))
    assert len(batches) == 1
    run = MlflowClient(uri).get_run(kids["c0"])
    assert run.data.metrics["train_loss"] == 0.3 and "val_auc" not in run.data.metrics
    assert run.data.tags["cerebro.nonfinite.e2"] == "val_auc=nan"
    assert run.data.metrics["best_val_loss"] == 0.45 and run.data.tags["best_epoch"] == "1"
    assert run.data.tags["cerebro.ckpt.e2.sha256"] == sha256(blob)
    got = MlflowClient(uri).download_artifacts(kids["c0"], "checkpoints/epoch_2.ckpt", str(tmp_path / "ck"))
    assert open(got, "rb").read() == blob

    def no_upload(*_a, **_k):
        raise OSError("artifact store down")

    monkeypatch.setattr(tr.client, "log_artifact", no_upload)  # the metrics still land; no sha tag claims a file
    tr.log_epoch_result(kids["c1"], 3, {"train_loss": 0.2}, None, (blob, sha256(blob)))
    run = MlflowClient(uri).get_run(kids["c1"])
    assert run.data.metrics["train_loss"] == 0.2 and "cerebro.ckpt.e3.sha256" not in run.data.tags


def test_registered_model_description_from_study(study, uri):
    keras = pytest.importorskip("keras")
    _, tr, _, kids = study
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model_uri = log_tensorflow_model(tr, kids["c0"], model)
    tr.register_champion("described", model_uri, "val_loss", 0.5, {})
    tr.describe_model("described", "Synthetic regression")
    c = MlflowClient(uri)
    assert c.get_registered_model("described").description == "Synthetic regression"
    c.update_registered_model("described", description="written by hand")
    tr.describe_model("described", "Synthetic regression")  # a description already there is kept
    assert c.get_registered_model("described").description == "written by hand"


def test_warm_up_opens_the_client_in_the_background_and_later_calls_use_it(tmp_path, uri, experiment):
    """An epoch task starts the warm-up before training; the metrics it logs afterwards land in the child run,
    through the one client the warm-up created."""
    from cerebro_ops.mlflow.tracking import preload_mlflow

    preload_mlflow(uri).join(timeout=120)
    tr = Tracker(uri, experiment)
    thread = tr.warm_up()
    thread.join(timeout=120)
    assert not thread.is_alive() and tr._client is not None
    client = tr._client
    parent = tr.start_study(make_spec(tmp_path), "r-warm", {})
    child = tr.start_config(parent, "c0", {"lr": 0.1})
    tr.log_epoch(child, 1, {"val_loss": 0.25})
    assert tr.client is client
    assert MlflowClient(uri).get_run(child).data.metrics["val_loss"] == 0.25


def test_warm_up_failure_only_warns(caplog):
    tr = Tracker("unknownscheme://nowhere", "x")
    with caplog.at_level(logging.WARNING, logger="cerebro_ops.mlflow.tracking"):
        tr.warm_up().join(timeout=60)
    assert any("MLflow warm-up failed" in r.getMessage() for r in caplog.records)


def test_index_installed_packages_leaves_mlflow_its_module_map(monkeypatch):
    """The map MLflow builds when a model is logged (to compare its requirements with what is installed) is
    built beforehand, and MLflow then reuses it instead of reading every distribution again."""
    from mlflow.utils import requirements_utils

    from cerebro_ops.mlflow.tracking import index_installed_packages

    monkeypatch.setattr(requirements_utils, "_MODULES_TO_PACKAGES", None)
    index_installed_packages()
    built = requirements_utils._MODULES_TO_PACKAGES
    assert isinstance(built, dict) and "mlflow" in built["mlflow"] and "numpy" in built["numpy"]
    calls = []
    monkeypatch.setattr(requirements_utils.importlib_metadata, "packages_distributions", lambda: calls.append(1))
    assert requirements_utils._check_requirement_satisfied("numpy>=1") is None
    assert calls == [] and requirements_utils._MODULES_TO_PACKAGES is built
