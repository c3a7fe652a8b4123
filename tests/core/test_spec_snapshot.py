"""A run's spec snapshot (state.json) goes through the same checks as a spec file when it is read back."""
from __future__ import annotations

import copy
import json

import pytest

from cerebro_ops import study
from cerebro_ops.core.errors import SpecError
from cerebro_ops.core.run_state import RunState
from cerebro_ops.core.spec import load_spec, parse_spec, spec_from_dict


def snapshot(tmp_path) -> dict:
    spec = parse_spec({
        "name": "snap", "seed": 3,
        "data": {"source": str(tmp_path / "d.csv"), "label": "y", "numeric": ["a"], "categorical": ["c"],
                 "arrays": {"px": [2, 2]}},
        "model": {"builder": "cerebro_ops.builders:mlp"},
        "search": {"method": "random", "num_configs": 4,
                   "space": {"lr": {"loguniform": [0.001, 0.1]}, "units": [8, 16], "q": {"quniform": [0, 1, 0.5]}}},
        "train": {"epochs": 2, "workers": 2}, "pruning": {"method": "median"}, "schedule": "@daily",
        "runtime": {"store": (tmp_path / "store").as_uri(), "tracking_uri": f"sqlite:///{tmp_path}/m.db"}})
    return json.loads(json.dumps(spec.to_dict()))


def test_a_valid_snapshot_round_trips(tmp_path):
    d = snapshot(tmp_path)
    assert spec_from_dict(d).to_dict() == spec_from_dict(copy.deepcopy(d)).to_dict()
    assert json.loads(json.dumps(spec_from_dict(d).to_dict())) == d
    demo = load_spec("dags/specs/demo.yaml")
    assert spec_from_dict(json.loads(json.dumps(demo.to_dict()))) == demo


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(name="../other_study"), "name"),
    (lambda d: d["search"].update(num_configs=10**9), "search.num_configs"),
    (lambda d: d["train"].update(workers=100000), "train.workers"),
    (lambda d: d.update(model_builder="os.system; rm -rf"), "model.builder"),
    (lambda d: d["runtime"].update(store="file:///tmp/../etc"), "runtime.store"),
    (lambda d: d["search"]["space"][0].update(args=[0.1, float("inf")]), "search.space.lr"),
    (lambda d: d["data"].update(max_categories=10**7), "data.max_categories"),
])
def test_a_tampered_snapshot_is_refused(tmp_path, edit, field):
    d = snapshot(tmp_path)
    edit(d)
    with pytest.raises(SpecError) as ei:
        spec_from_dict(d)
    assert ei.value.field == f"spec snapshot: {field}"
    assert "state.json was changed after prepare" in ei.value.fix


def test_a_run_whose_state_was_tampered_with_does_not_open(tmp_path):
    d = snapshot(tmp_path)
    spec = spec_from_dict(d)
    repo = study.repository(spec, "r1")
    state = RunState(run_id="r1", study=spec.name, created="2026-01-01T00:00:00+00:00", overrides={}, spec=d,
                     epochs=2, seed=3, tags={})
    repo.save(state)
    assert study.open_run(spec, "r1")[2] == spec
    raw = repo.store.read_json("state.json")
    raw["spec"]["train"]["epochs"] = 0
    repo.store.write_json("state.json", raw)
    with pytest.raises(SpecError, match="spec snapshot: train.epochs"):
        study.open_run(spec, "r1")
