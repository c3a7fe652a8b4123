"""study.register: challenger and champion scored on the same raw validation rows, each through its own encoding.

Runs are laid out in the store by hand (meta.json contract, raw validation rows, a checkpoint, state.json),
so no Spark is needed. Four runs of one study, each with different standardisation statistics:
0. the champion is an old tensorflow-flavor model: it cannot take raw rows, the challenger replaces it;
1. an untrained challenger replaces that; 2. a trained one beats it; 3. an untrained one does not.
"""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

mlflow = pytest.importorskip("mlflow")

from cerebro_ops import study  # noqa: E402
from cerebro_ops.core.encoding import Encoding  # noqa: E402
from cerebro_ops.core.spec import parse_spec  # noqa: E402
from cerebro_ops.store import run_store  # noqa: E402
from cerebro_ops.mlflow.tracking import Tracker  # noqa: E402
from cerebro_ops.keras.trainer import DataInfo, HopTrainer  # noqa: E402
from .legacy_models import log_tensorflow_model  # noqa: E402

BUILDER = "cerebro_ops.builders:mlp"
PARAMS = {"hidden_units": 8, "num_layers": 1, "learning_rate": 0.05, "batch_size": 16}
NAME = "reg_demo"


def rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(10.0, 2.0, n), rng.normal(-3.0, 0.5, n)
    colour = rng.choice(["red", "green", "blue"], n)
    score = (a - 10.0) / 2.0 + (colour == "red") - (b + 3.0)
    return pd.DataFrame({"a.1": a, "b 2": b, "colour": colour, "label": np.where(score > 0.3, "yes", "no")})


def meta_for(train: pd.DataFrame, shift: float) -> dict:
    """Stats of the train rows, shifted by `shift` std: each run encodes the same columns differently."""
    stats = {c: {"mean": float(train[c].mean() + shift * train[c].std(ddof=0)), "std": float(train[c].std(ddof=0))}
             for c in ("a.1", "b 2")}
    return {"task": "binary", "label": "label", "numeric": ["a.1", "b 2"], "categorical": ["colour"], "arrays": {},
            "numeric_stats": stats, "categories": {"colour": ["blue", "red"]}, "label_classes": ["no", "yes"],
            "num_classes": 2, "input_shape": [5], "feature_spans": {"a.1": [0, 1], "b 2": [1, 2], "colour": [2, 5]},
            "raw_dtypes": {"a.1": "double", "b 2": "double", "colour": "string", "label": "string"},
            "raw_columns": {"_n0": "a.1", "_n1": "b 2", "_k0": "colour", "_y": "label"}}


def make_spec(tmp_path):
    return parse_spec({
        "name": NAME, "seed": 1,
        "data": {"source": str(tmp_path / "unused.csv"), "label": "label", "numeric": ["a.1", "b 2"],
                 "categorical": ["colour"]},
        "model": {"builder": BUILDER}, "search": {"method": "grid", "space": {"learning_rate": [0.05]}},
        "train": {"epochs": 1, "workers": 1, "metric": "val_loss"},
        "runtime": {"store": (tmp_path / "store").as_uri(), "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
    })


def lay_out_run(spec, run_id: str, meta: dict, val: pd.DataFrame, state_blob: bytes,
                train: pd.DataFrame | None = None, overrides: dict | None = None) -> None:
    """What prepare/run_epoch/select leave behind for register: raw train and val rows, a checkpoint, state.json."""
    st = run_store(spec.runtime.store, spec.name, run_id)
    internal = {v: k for k, v in meta["raw_columns"].items()}
    for split, frame in (("val", val), ("train", rows(400, 0) if train is None else train)):
        table = pa.Table.from_pandas(frame.rename(columns=internal).assign(_order=np.arange(len(frame))),
                                     preserve_index=False)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        st.write_bytes(f"data/raw/{split}/part-0.parquet", buf.getvalue())
    sha = st.write_blob("ckpt/c0.npz", state_blob)
    tracker = Tracker(spec.runtime.tracking_uri, spec.runtime.experiment)
    parent = tracker.start_study(spec, run_id, {})
    child = tracker.start_config(parent, "c0", PARAMS)
    st.write_json("state.json", {
        "run_id": run_id, "overrides": overrides or {}, "epochs": 1, "epochs_done": 1, "configs": {"c0": PARAMS},
        "status": {"c0": "FINISHED"}, "reasons": {}, "selected": "c0", "meta": meta,
        "history": {"c0": [{"epoch": 1, "val_loss": 0.5, "ckpt": {"ckpt": "ckpt/c0.npz", "sha256": sha}}]},
        "mlflow": {"parent": parent, "children": {"c0": child}},
    })


def trained_state(trainer: HopTrainer, enc: Encoding, train: pd.DataFrame, epochs: int, seed: int) -> bytes:
    state = trainer.initial_checkpoint(BUILDER, PARAMS, seed)
    x, y = enc.encode(train), enc.encode_labels(train["label"])
    for e in range(epochs):
        state, _ = trainer.train(BUILDER, PARAMS, state, x, y, seed + e)
    return state


def loss_of(trainer, state, enc: Encoding, val: pd.DataFrame) -> float:
    return trainer.evaluate(BUILDER, PARAMS, state, enc.encode(val), enc.encode_labels(val["label"]))["loss"]


def test_champion_and_challenger_each_scored_through_their_own_encoding(tmp_path):
    import keras

    spec = make_spec(tmp_path)
    train = rows(400, 0)
    trainer = HopTrainer(DataInfo((5,), "binary", 2), deterministic=True)
    tracker = Tracker(spec.runtime.tracking_uri, spec.runtime.experiment)
    client = tracker.client

    # 0: an encoded-tensor champion from before raw-row models
    old = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
    old.compile(optimizer="adam", loss="binary_crossentropy")
    parent0 = tracker.start_study(spec, "old", {})
    uri0 = log_tensorflow_model(tracker, tracker.start_config(parent0, "c0", {}), old)
    assert tracker.register_champion(NAME, uri0, "val_loss", 0.1, {}) == "1"

    metas, vals, states = {}, {}, {}
    for i, (shift, epochs, seed) in enumerate([(0.0, 0, 7), (0.5, 30, 8), (-0.5, 0, 9)], start=1):
        run_id = f"run-{i}"
        metas[i], vals[i] = meta_for(train, shift), rows(120, 10 + i)
        states[i] = trained_state(trainer, Encoding.from_meta(metas[i]), train, epochs, seed)
        lay_out_run(spec, run_id, metas[i], vals[i], states[i])
    enc = {i: Encoding.from_meta(m) for i, m in metas.items()}

    # run 1: the tensorflow-flavor champion cannot score raw rows -> replaced, and the reason says why
    d1 = study.register(spec, "run-1")
    assert d1["promoted"] is True and d1["version"] == "2" and d1["replaced"] == "1" and d1["champion"] is None
    assert d1["challenger"] == pytest.approx(loss_of(trainer, states[1], enc[1], vals[1]), rel=1e-5)
    assert d1["reason"].startswith(f"promoted: val_loss {d1['challenger']:.6g}; champion v1 could not be scored "
                                   "on this run's validation rows (v1 was not registered by cerebro-ops with the "
                                   "sha256 of its files")

    # run 2: trained for 30 epochs, it beats v2 on run 2's rows; v2 is scored through run 1's encoding
    d2 = study.register(spec, "run-2")
    champ_on_2 = loss_of(trainer, states[1], enc[1], vals[2])
    assert d2["champion"] == pytest.approx(champ_on_2, rel=1e-5)
    assert d2["champion"] != pytest.approx(loss_of(trainer, states[1], enc[2], vals[2]), rel=1e-3)
    assert d2["challenger"] == pytest.approx(loss_of(trainer, states[2], enc[2], vals[2]), rel=1e-5)
    assert d2["promoted"] is True and d2["version"] == "3" and d2["replaced"] == "2"
    assert d2["reason"] == (f"promoted: val_loss {d2['challenger']:.6g} < {d2['champion']:.6g} of v2 "
                            "on this run's validation rows, none of which v2 trained on")
    assert d2["rows"] == {"compared": 120, "validation": 120}
    mv = client.get_model_version(NAME, "3")
    assert mv.tags["cerebro.replaced_version"] == "2" and mv.tags["cerebro.decision"] == d2["reason"]
    assert mv.tags["cerebro.registered_by"] == "cerebro-ops"
    assert len(mv.tags["cerebro.keras_sha256"]) == len(mv.tags["cerebro.encoding_sha256"]) == 64
    assert mv.tags["cerebro.metric"] == "val_loss" and mv.tags["cerebro.run_id"] == "run-2"
    assert float(mv.tags["cerebro.metric_value"]) == d2["challenger"] and mv.description == d2["reason"]
    assert mv.tags["cerebro.mlflow_run_id"] == mv.run_id and mv.run_id  # the child run the model was logged in
    assert mv.tags["cerebro.model_uri"].startswith("models:/")

    # run 3: untrained, it does not beat v3 (scored through run 2's encoding on run 3's rows)
    d3 = study.register(spec, "run-3")
    assert d3["champion"] == pytest.approx(loss_of(trainer, states[2], enc[2], vals[3]), rel=1e-5)
    assert d3["promoted"] is False and d3["version"] == "3" and d3["replaced"] is None
    assert d3["reason"] == (f"not promoted: challenger val_loss {d3['challenger']:.6g} does not beat "
                            f"{d3['champion']:.6g} of v3 on this run's validation rows, none of which v3 trained on")
    assert tracker.champion(NAME)["version"] == "3"
    assert len(client.search_model_versions(f"name='{NAME}'")) == 3
    parent3 = client.get_run(study.load_state(spec, "run-3")["mlflow"]["parent"])
    assert parent3.info.status == "FINISHED"
    assert parent3.data.tags["cerebro.champion.promoted"] == "false"
    assert parent3.data.tags["cerebro.champion.decision"] == d3["reason"]
    assert parent3.data.tags["cerebro.champion.version"] == "3"
    parent2 = client.get_run(study.load_state(spec, "run-2")["mlflow"]["parent"])
    assert parent2.data.tags["cerebro.champion.promoted"] == "true"

    # idempotent: a retried register task returns the recorded decision and registers nothing
    assert study.register(spec, "run-3") == d3
    assert len(client.search_model_versions(f"name='{NAME}'")) == 3

    # the champion scores raw rows (the label column is ignored) like its Keras model on its own encoding
    with tracker.mlflow_context():
        pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    model = trainer.keras_model(BUILDER, PARAMS, states[2])
    want = enc[2].decode(model.predict(enc[2].encode(vals[3]), verbose=0))
    pd.testing.assert_frame_equal(pyfunc.predict(vals[3]), want)


def test_rows_the_champion_trained_on_are_left_out(tmp_path):
    """Run 2's validation rows include 60 rows that champion v1 trained on (a retrain on overlapping data):
    challenger and champion are compared on the other 60 only, and the decision says so."""
    spec = make_spec(tmp_path)
    train1, train2 = rows(400, 0), rows(400, 5)
    meta = meta_for(train1, 0.0)
    enc = Encoding.from_meta(meta)
    trainer = HopTrainer(DataInfo((5,), "binary", 2), deterministic=True)
    states = {1: trained_state(trainer, enc, train1, 3, 7), 2: trained_state(trainer, enc, train1, 0, 8)}
    lay_out_run(spec, "run-1", meta, rows(120, 11), states[1], train=train1)
    assert study.register(spec, "run-1")["version"] == "1"
    fresh = rows(60, 12)
    val2 = pd.concat([train1.head(60), fresh], ignore_index=True)
    lay_out_run(spec, "run-2", meta, val2, states[2], train=train2)

    d = study.register(spec, "run-2")

    assert d["rows"] == {"compared": 60, "validation": 120}
    assert d["champion"] == pytest.approx(loss_of(trainer, states[1], enc, fresh), rel=1e-5)
    assert d["challenger"] == pytest.approx(loss_of(trainer, states[2], enc, fresh), rel=1e-5)
    assert d["reason"].endswith("on the 60 of this run's 120 validation rows that v1 did not train on")
    tracker = Tracker(spec.runtime.tracking_uri, spec.runtime.experiment)
    champion = tracker.champion(NAME)
    assert len(tracker.champion_train_rows(champion)) == 400  # whichever won, its 400 training rows are recorded
    assert champion["tags"]["cerebro.train_rows_columns"] == '["label", "a.1", "b 2", "colour"]'


def test_a_triggered_source_logs_made_up_example_rows(tmp_path):
    """A run whose trigger chose the data source logs typical made-up rows as the model's input example, not
    rows of that data; a run on the spec's own source logs five of its validation rows."""
    import json

    train = rows(400, 0)
    meta = meta_for(train, 0.0)
    trainer = HopTrainer(DataInfo((5,), "binary", 2), deterministic=True)
    blob = trained_state(trainer, Encoding.from_meta(meta), train, 0, 7)
    val = rows(120, 11)
    examples = {}
    for run_id, overrides in (("own", {}), ("triggered", {"source": str(tmp_path / "other.csv")})):
        (tmp_path / run_id).mkdir()
        spec = make_spec(tmp_path / run_id)  # a study of its own: each run registers the first champion
        lay_out_run(spec, run_id, meta, val, blob, overrides=overrides)
        tracker = Tracker(spec.runtime.tracking_uri, spec.runtime.experiment)
        assert study.register(spec, run_id)["promoted"] is True
        mv = tracker.client.get_model_version(NAME, tracker.champion(NAME)["version"])
        with tracker.mlflow_context():
            local = mlflow.artifacts.download_artifacts(mv.tags["cerebro.model_uri"])
        with open(f"{local}/input_example.json", encoding="utf-8") as f:
            examples[run_id] = json.load(f)
    assert examples["own"]["data"][0][:2] == pytest.approx(val[["a.1", "b 2"]].iloc[0].tolist())
    made_up = examples["triggered"]["data"]
    assert made_up == [[meta["numeric_stats"]["a.1"]["mean"], meta["numeric_stats"]["b 2"]["mean"], "blue"]] * 2
    shown = {round(v, 9) for row in made_up for v in row[:2]}
    assert not shown & {round(v, 9) for v in val[["a.1", "b 2"]].to_numpy().ravel()}


# The pyfunc "another MLflow user" registers: its code writes a marker file as soon as MLflow loads it.
HOSTILE_MODEL = """import pathlib

import mlflow.pyfunc
from mlflow.models import set_model

pathlib.Path({marker!r}).write_text("code of the registry's champion ran")


class Hostile(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        pathlib.Path({marker!r}).write_text("load_context of the registry's champion ran")

    def predict(self, context, model_input, params=None):
        return model_input


set_model(Hostile())
"""


def register_hostile_champion(tmp_path, marker, tags: dict) -> str:
    """A pyfunc logged and registered outside cerebro-ops under the study's model name, with the metadata keys
    this project writes and a Keras file of its own, aliased champion; returns its version."""
    import keras

    code = tmp_path / "hostile_model.py"
    code.write_text(HOSTILE_MODEL.format(marker=str(marker)))
    own = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
    own.compile(optimizer="adam", loss="binary_crossentropy")
    own.save(tmp_path / "model.keras")
    (tmp_path / "encoding.json").write_text("{}")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        other = mlflow.create_experiment("another-user", artifact_location=(tmp_path / "their-artifacts").as_uri())
        with mlflow.start_run(experiment_id=other):
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(code),
                artifacts={"keras_model": str(tmp_path / "model.keras"), "encoding": str(tmp_path / "encoding.json")},
                metadata={"cerebro.task": "binary", "cerebro.label": "label"}, pip_requirements=["mlflow"])
        mv = mlflow.register_model(info.model_uri, NAME)
        client = mlflow.MlflowClient()
        for k, v in tags.items():
            client.set_model_version_tag(NAME, mv.version, k, v)
        client.set_registered_model_alias(NAME, "champion", mv.version)
    finally:
        mlflow.set_tracking_uri(None)
    marker.unlink(missing_ok=True)  # logging a model from code runs it once; only a later load matters
    return str(mv.version)


@pytest.mark.parametrize("tags, why", [
    ({}, "was not registered by cerebro-ops with the sha256 of its files"),
    # the tags copied from a real registration cannot vouch for other files
    ({"cerebro.registered_by": "cerebro-ops", "cerebro.keras_sha256": "0" * 64, "cerebro.encoding_sha256": "1" * 64},
     "artifacts/model.keras does not match the sha256 recorded when it was registered"),
])
def test_registry_swapped_champion_is_never_loaded(tmp_path, tags, why):
    spec = make_spec(tmp_path)
    marker = tmp_path / "champion-code-ran"
    version = register_hostile_champion(tmp_path, marker, tags)
    train = rows(400, 0)
    meta = meta_for(train, 0.0)
    trainer = HopTrainer(DataInfo((5,), "binary", 2), deterministic=True)
    lay_out_run(spec, "run-1", meta, rows(120, 11), trained_state(trainer, Encoding.from_meta(meta), train, 0, 7))

    decision = study.register(spec, "run-1")

    assert not marker.exists()
    assert decision["promoted"] is True and decision["replaced"] == version and decision["champion"] is None
    assert f"champion v{version} could not be scored on this run's validation rows (v{version}" in decision["reason"]
    assert why in decision["reason"] and "it was not loaded" in decision["reason"]
    tracker = Tracker(spec.runtime.tracking_uri, spec.runtime.experiment)
    assert tracker.champion(NAME)["version"] == str(int(version) + 1)
    # the version this run registered is loaded as data (hashes checked), and its own code is not needed
    champ = tracker.load_champion_data(tracker.champion(NAME))
    assert champ.encoding == Encoding.from_meta(meta)
    assert not marker.exists()
    # the marker is what loading that version as a pyfunc does
    with tracker.mlflow_context():
        mlflow.pyfunc.load_model(f"models:/{NAME}/{version}")
    assert marker.exists()
