"""What MLflow alone holds of the shared study run (conftest.study_run: 2 configs x 2 epochs x 2 workers) is
enough to pick the champion and to pick up its training:

- each child run's ``best_<metric>`` / ``best_epoch`` summary is the leaderboard's value and epoch, so sorting
  the runs table by it puts the selected config first, and the registered model carries the study's
  description;
- a child run's ``checkpoints/epoch_1.ckpt`` (weights and optimizer state), restored into a model built from
  the builder (the parent run's spec.yaml) and the child's params, and trained through epoch 2 with the hops
  of the parent run's ``hops.json`` table (partition order, hop seeds), gives the study's epoch-2 metrics
  (deterministic mode: to 1e-6).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.spark]

TOL = 1e-6


def _client(spec):
    from mlflow import MlflowClient
    return MlflowClient(tracking_uri=spec.runtime.tracking_uri)


def _runs(study_run):
    from cerebro_ops.mlflow.tracking import MODEL_ID_TAG

    parent, children = study_run.mlflow_runs()
    assert parent is not None and len(children) == 2
    return parent, {c.data.tags[MODEL_ID_TAG]: c for c in children}


def _hop_table(client, parent, dst: Path) -> list[dict]:
    from cerebro_ops.mlflow.tracking import HOP_TABLE

    table = json.loads(Path(client.download_artifacts(parent.info.run_id, HOP_TABLE, str(dst))).read_text())
    return [dict(zip(table["columns"], row)) for row in table["data"]]


def test_best_epoch_summary_points_at_the_champion(study_run):
    spec = study_run.spec
    client = _client(spec)
    parent, children = _runs(study_run)
    metric = spec.train.metric
    rows = study_run.result["leaderboard"]
    for row in rows:
        run = children[row["model_id"]]
        assert run.data.metrics[f"best_{metric}"] == pytest.approx(row[metric], abs=1e-12)
        assert run.data.metrics["best_epoch"] == row["best_epoch"]
        assert run.data.tags["best_epoch"] == str(row["best_epoch"])
    ranked = client.search_runs([parent.info.experiment_id],
                                filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                order_by=[f"metrics.best_{metric} DESC"])
    assert ranked[0].data.tags["cerebro.model_id"] == study_run.state["selected"] == rows[0]["model_id"]
    # the decision, with its metric and version, on the parent run; the study's description on the model
    decision = study_run.result["registered"]
    tags = client.get_run(parent.info.run_id).data.tags
    assert tags["cerebro.champion.decision"] == decision["reason"]
    assert tags["cerebro.champion.version"] == decision["version"] and tags["cerebro.champion.metric"] == metric
    description = client.get_registered_model(spec.name).description
    assert description.startswith(spec.description.strip()) and "champion" in description


def test_restore_epoch_checkpoint_from_mlflow_and_replay_next_epoch(study_run, tmp_path):
    from cerebro_ops.data.reader import load_partition, load_split
    from cerebro_ops.core.spec import spec_from_dict
    from cerebro_ops.store import sha256
    from cerebro_ops.keras.trainer import HopTrainer, data_info, load_checkpoint

    spec = study_run.spec
    client = _client(spec)
    parent, children = _runs(study_run)
    hops = _hop_table(client, parent, tmp_path / "hops")
    logged_spec = spec_from_dict(yaml.safe_load(Path(client.download_artifacts(
        parent.info.run_id, "spec.yaml", str(tmp_path / "spec"))).read_text()))
    builder = logged_spec.model_builder
    assert logged_spec.train.deterministic is True
    meta = study_run.state["meta"]  # the prepared data: the partitions are read from the store
    data_url = study_run.store.url("data")
    shape = tuple(meta["input_shape"])
    trainer = HopTrainer(data_info(meta), deterministic=True)
    k = 1
    report = []
    for model_id, run in sorted(children.items()):
        child = run.info.run_id
        params = {name: json.loads(v) for name, v in run.data.params.items()}  # MLflow keeps params as text
        # epoch k's checkpoint, from the child run, checked against the hop table and the run's tag
        end_k = [h for h in hops if h["mlflow_ckpt"] == f"runs:/{child}/checkpoints/epoch_{k}.ckpt"]
        assert len(end_k) == 1, f"{model_id}: {len(end_k)} epoch-{k} checkpoint rows"
        blob = Path(client.download_artifacts(child, f"checkpoints/epoch_{k}.ckpt", str(tmp_path / model_id))).read_bytes()
        assert sha256(blob) == end_k[0]["sha256"] == run.data.tags[f"cerebro.ckpt.e{k}.sha256"]

        model = trainer.keras_model(builder, params, blob)  # builder + params, then load_checkpoint
        load_checkpoint(model, blob)
        assert int(np.asarray(model.optimizer.iterations)) > 0  # the optimizer state came with the weights

        # epoch k+1 with the study's hops: its partition order and hop seeds
        nxt = sorted((h for h in hops if h["model_id"] == model_id and h["epoch"] == k + 1
                      and h["kind"] == "train" and h["status"] == "ok"), key=lambda h: h["hop"])
        assert sorted(h["partition"] for h in nxt) == list(range(spec.train.workers))
        ckpt, losses = blob, []
        for h in nxt:
            x, y = load_partition(data_url, "train", h["partition"], shape)
            ckpt, stats = trainer.train(builder, params, ckpt, x, y, h["seed"])
            assert stats["loss"] == pytest.approx(h["loss"], abs=TOL), f"{model_id} hop {h['hop']}"
            losses.append((stats["loss"], stats["n"]))
        train_loss = sum(l * n for l, n in losses) / sum(n for _, n in losses)

        # the whole validation split (what the last hop of an epoch evaluates; the example-weighted mean of
        # per-shard evaluations of older runs is the same number)
        val = trainer.evaluate(builder, params, ckpt, *load_split(data_url, "val", shape))
        replayed = {"train_loss": train_loss, **{f"val_{key}": v for key, v in val.items() if key != "n"}}
        study = {name: _metric_at(client, child, name, k + 1) for name in replayed}
        for name, value in replayed.items():
            assert value == pytest.approx(study[name], abs=TOL), f"{model_id} {name}: {value} vs {study[name]}"
        same_bytes = sha256(ckpt) == nxt[-1]["sha256"]
        report.append(f"{model_id}: {replayed} (checkpoint bytes identical: {same_bytes})")
    print("\n" + "\n".join(report))


def _metric_at(client, run_id: str, name: str, step: int) -> float:
    values = [m.value for m in client.get_metric_history(run_id, name) if m.step == step]
    assert values, f"run {run_id} has no {name} at step {step}"
    return values[-1]
