"""The typed run state: state.json of earlier versions read and written back unchanged, the repository,
and the spec snapshot every step after prepare runs with. No Spark, TensorFlow or MLflow."""
import copy
import json

import pytest

from cerebro_ops import study
from cerebro_ops.core.errors import DataError
from cerebro_ops.core.run_state import EpochEntry, ModelStatus, RunRepository, RunState
from cerebro_ops.core.spec import load_spec, parse_spec, spec_from_dict

from tests.offline_study import go_offline, raw_spec, scoring_launcher, write_spec

CKPT = {"ckpt": "ckpt/m002/e1-h1.npz", "sha256": "92"}

# A TPE run as the CLI wrote it before the state was typed (trimmed to 3 configs): one failed, one pruned.
OLD_STATE = {
    "run_id": "r", "study": "t", "created": "2026-11-29T14:42:47.925213+00:00", "overrides": {"epochs": 2},
    "epochs": 2, "epochs_done": 2, "seed": 5, "tags": {"airflow.run_id": "manual__1"},
    "configs": {"m000": {"learning_rate": 0.058, "units": 9}, "m001": {"learning_rate": 0.0117, "units": 14},
                "m002": {"learning_rate": 0.00185, "units": 8}},
    "status": {"m000": "FAILED", "m001": "FINISHED", "m002": "PRUNED"},
    "reasons": {"m000": "loss became nan", "m002": "pruned by median after epoch 1"},
    "ckpt": {"m000": None, "m001": {"ckpt": "ckpt/m001/e2-h1.npz", "sha256": "ab"}, "m002": CKPT},
    "history": {"m000": [],
                "m001": [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.6, "ckpt": {"ckpt": "x", "sha256": "1"}},
                         {"epoch": 2, "train_loss": 1.0, "val_loss": 0.5,
                          "ckpt": {"ckpt": "ckpt/m001/e2-h1.npz", "sha256": "ab"}}],
                "m002": [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "ckpt": CKPT}]},
    "mlflow": {"parent": "p1", "children": {"m000": "c0", "m001": "c1", "m002": "c2"}},
    "meta": {"rows": 20}, "prepared": True, "partitioned": True, "selected": "m001",
    "tpe": {"batches": [["m000", "m001"], ["m002"]], "sizes": [2, 1]},
    "replay_of": {"run_id": "r0", "configs": {"m000": {"learning_rate": 0.058, "units": 9}},
                  "batches": [["m000"]]},
    "registered": {"model_id": "m001", "promoted": True, "version": "3"},
}


def test_an_older_state_json_reads_typed_and_writes_back_unchanged():
    state = RunState.from_json(copy.deepcopy(OLD_STATE))
    assert state.models["m000"].status is ModelStatus.FAILED and state.models["m000"].reason == "loss became nan"
    assert state.models["m002"].status is ModelStatus.PRUNED and state.models["m002"].mlflow_run == "c2"
    assert state.models["m001"].history[1] == EpochEntry(2, {"train_loss": 1.0, "val_loss": 0.5},
                                                        {"ckpt": "ckpt/m001/e2-h1.npz", "sha256": "ab"})
    assert (state.current_batch, state.batch_count, state.tpe.batches[1]) == (1, 2, ["m002"])
    assert state.live_models() == [] and state.with_status(ModelStatus.FINISHED) == ["m001"]
    assert state.replay_of.batches == [["m000"]] and state.spec is None
    assert state.to_json() == OLD_STATE
    assert json.loads(json.dumps(state.to_json())) == OLD_STATE  # the statuses are plain strings in JSON


def test_a_minimal_state_takes_defaults_and_keeps_unknown_keys():
    d = {"run_id": "r1", "configs": {"m1": {"lr": 0.1}}, "status": {}, "history": {},
         "future_key": {"kept": True}}
    state = RunState.from_json(d)
    rec = state.models["m1"]
    assert (rec.status, rec.history, rec.ckpt, rec.mlflow_run) == (ModelStatus.RUNNING, [], None, None)
    assert (state.epochs_done, state.tpe, state.prepared, state.registered) == (0, None, False, None)
    assert list(state.models) == ["m1"] and state.batch_count == 1
    out = state.to_json()
    assert out["future_key"] == {"kept": True} and out["status"] == {"m1": "RUNNING"}
    assert "prepared" not in out and "selected" not in out


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="DONE"):
        RunState.from_json({"run_id": "r", "configs": {"m": {}}, "status": {"m": "DONE"}})


def test_repository_is_where_a_run_state_lives(tmp_path):
    uri = (tmp_path / "store").as_uri()
    repo = RunRepository(uri, "t", "manual__2024-01-01T00:00:00+00:00")  # an Airflow run id
    assert not repo.exists()
    with pytest.raises(DataError) as err:
        repo.load()
    assert err.value.field == "run_id" and "has not been prepared" in str(err.value)
    state = RunState.from_json(copy.deepcopy(OLD_STATE))
    state.run_id = repo.run_id
    repo.save(state)
    assert repo.exists() and repo.load().to_json() == state.to_json()
    assert json.loads(repo.store.read_bytes("state.json"))["status"]["m002"] == "PRUNED"
    older = RunState(run_id="older", created="2020-01-01T00:00:00", registered=None)
    RunRepository(uri, "t", "older").save(older)
    assert RunRepository.latest(uri, "t") == repo.run_id
    assert RunRepository.latest(uri, "t", unfinished=True) == "older"  # the newer one is registered
    repo.delete()
    assert not repo.exists() and not repo.store.exists()
    assert RunRepository.latest(uri, "t") == "older" and RunRepository.latest(uri, "other") is None


def test_spec_round_trips_through_its_snapshot():
    spec = parse_spec({
        "name": "s", "seed": 3, "description": "d", "schedule": "@daily",
        "data": {"source": "x.parquet", "label": "y", "task": "multiclass", "numeric": ["a"],
                 "categorical": ["c"], "arrays": {"img": [8, 8, 1]}, "validation_column": "is_val",
                 "stratify": False},
        "model": {"builder": "m:f"},
        "search": {"method": "tpe", "num_configs": 5, "batch_size": 2,
                   "space": {"shape": {"choice": [[8, 8], [16]]}, "lr": {"loguniform": [1e-4, 1e-1]},
                             "bs": {"quniform": [16, 256, 16]}, "act": ["relu", None, True]}},
        "train": {"epochs": 4, "workers": 3, "metric": "val_accuracy", "deterministic": False},
        "pruning": {"method": "asha", "min_epochs": 2, "reduction_factor": 2},
        "runtime": {"store": "memory://x", "tracking_uri": "sqlite:///m.db", "max_hop_retries": 1}})
    back = spec_from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and hash(back) == hash(spec)
    with pytest.raises(Exception, match="spec snapshot: colour"):
        spec_from_dict({**spec.to_dict(), "colour": "red"})


@pytest.fixture
def offline(monkeypatch):
    return go_offline(monkeypatch)


def test_later_steps_run_the_snapshot_not_the_edited_yaml(tmp_path, offline):
    """Workers and builder edited in the YAML after prepare: partition, the epochs and select still use the
    spec the run was prepared with (overrides included); the YAML only tells where the run is."""
    path = write_spec(tmp_path / "t.yaml", raw_spec(tmp_path, method="grid", epochs=3, workers=2))
    spec = load_spec(path)
    study.prepare(spec, "r", overrides={"epochs": 2})
    write_spec(path, raw_spec(tmp_path, method="grid", epochs=3, workers=3, builder="other.module:build"))
    edited = load_spec(path)
    assert edited.train.workers == 3
    prepared = study.run_spec(edited, study.load_run(edited, "r"))
    assert prepared == spec.with_overrides(epochs=2) and prepared.model_builder == "m:f"
    seen: list = []
    result = study.run(edited, run_id="r", launcher=scoring_launcher(3, seen), register_model=False)
    assert offline["partition_workers"] == [2]
    assert {b for b, *_ in seen} == {"m:f"}  # the builder the workers were told to import
    assert {p for _, _, kind, p in seen if kind == "train"} == {0, 1}  # two partitions: two workers
    state = study.load_run(edited, "r")
    assert state.epochs_done == 2 and all(len(r.history) == 2 for r in state.models.values())
    assert [r["model_id"] for r in result["leaderboard"]] == ["m003", "m002", "m001", "m000"]  # val_loss, min


def test_a_run_prepared_before_snapshots_resumes_with_its_overrides(tmp_path, offline):
    """An older run (no spec snapshot, and for TPE no batches yet) resumes: the spec plus its overrides."""
    spec = parse_spec(raw_spec(tmp_path, num_configs=5, batch_size=3))
    study.prepare(spec, "old", overrides={"epochs": 2})
    repo = study.repository(spec, "old")
    raw = repo.store.read_json("state.json")
    del raw["spec"], raw["tpe"]  # as the earlier version wrote it
    repo.store.write_json("state.json", raw)
    assert study.run_spec(spec, RunState.from_json(raw)) == spec.with_overrides(epochs=2)
    study.run(spec, run_id="old", launcher=scoring_launcher(2), register_model=False)
    study.run(spec, run_id="new", overrides={"epochs": 2}, launcher=scoring_launcher(2), register_model=False)
    old, new = study.load_run(spec, "old"), study.load_run(spec, "new")
    assert old.tpe.batches == new.tpe.batches == [["m000", "m001", "m002"], ["m003", "m004"]]
    assert old.configs == new.configs
    assert {m: [e.metrics for e in r.history] for m, r in old.models.items()} == \
        {m: [e.metrics for e in r.history] for m, r in new.models.items()}
