"""Shared fixtures of the integration tests: one Spark session and one small real study run per session.

Both test_cli_study.py and test_sequential_equivalence.py read the same run (2 random configs, 2 epochs,
2 workers, the 2000-row dummy data), so the suite pays for one MOP study, not two: the machine is small.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.study_files import RunFiles

REPO = Path(__file__).resolve().parents[2]
DEMO_SPEC = REPO / "dags" / "specs" / "demo.yaml"
PY = sys.executable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def small_spec(name: str, source: Path, store: Path, db: Path, epochs: int = 2, num_configs: int = 2) -> dict:
    """dags/specs/demo.yaml with its own name, absolute data path, tmp store + sqlite tracking; 2x2 small."""
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["name"] = name
    raw["data"]["source"] = str(Path(source).resolve())
    raw["search"]["method"] = "random"
    raw["search"]["num_configs"] = num_configs
    raw["train"]["epochs"] = epochs
    raw["train"]["workers"] = 2
    raw["runtime"] = {"store": Path(store).resolve().as_uri(), "tracking_uri": f"sqlite:///{Path(db).resolve()}"}
    return raw


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def check_hop_invariants(records: list[dict], configs: list[str], workers: int, epochs: int) -> None:
    """MOP invariants of a hop log (all records, train and eval)."""
    for r in records:
        for f in ("epoch", "model_id", "partition", "worker", "start", "end", "status"):
            assert f in r, f"hop record without {f!r}: {r}"
        assert r["end"] >= r["start"], r
    ok = [r for r in records if r["status"] == "ok"]
    train = [r for r in ok if r.get("kind", "train") == "train"]
    seen: dict[tuple, list[int]] = {}
    for r in train:
        seen.setdefault((r["epoch"], r["model_id"]), []).append(r["partition"])
    expected = {(e, m) for e in range(1, epochs + 1) for m in configs}
    assert set(seen) == expected, f"(epoch, model) pairs trained: {sorted(seen)}; expected {sorted(expected)}"
    for key, parts in seen.items():
        assert sorted(parts) == list(range(workers)), f"{key} trained on partitions {parts}"

    def no_overlap(group_key: str) -> None:
        groups: dict = {}
        for r in ok:
            groups.setdefault(r[group_key], []).append((r["start"], r["end"], r["model_id"], r["partition"]))
        for k, ivs in groups.items():
            ivs.sort()
            for a, b in zip(ivs, ivs[1:]):
                assert a[1] <= b[0], f"{group_key}={k}: interval {a} overlaps {b}"

    no_overlap("worker")
    no_overlap("model_id")


@pytest.fixture(scope="session")
def spark():
    from cerebro_ops.spark.session import get_spark

    session = get_spark("local[2]", app_name="cerebro-integration")
    yield session
    session.stop()


@dataclass
class StudyRun(RunFiles):
    tmp: Path
    spec_path: Path
    spec: object
    run_id: str
    result: dict
    data_path: Path
    wall_s: float

    def hop_records(self) -> list[dict]:
        text = self.store.read_bytes("hoplog.jsonl").decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def study_run(tmp_path_factory, spark) -> StudyRun:
    from cerebro_ops import study
    from cerebro_ops.example_data import make_example_data
    from cerebro_ops.core.spec import load_spec

    tmp = tmp_path_factory.mktemp("study")
    data = make_example_data("dummy", tmp / "data")
    spec_path = write_yaml(tmp / "itest.yaml", small_spec("itest", data, tmp / "store", tmp / "mlflow.db"))
    spec = load_spec(spec_path)
    run_id = "itest-run-1"
    t0 = time.time()
    result = study.run(spec, run_id=run_id, spark=spark)
    return StudyRun(tmp, spec_path, spec, run_id, result, data, time.time() - t0)
