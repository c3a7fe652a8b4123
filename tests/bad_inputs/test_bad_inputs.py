"""The bad input corpus (cases.yaml): every case fails with ONE error naming the field and a fix, raised
before any work -- nothing is written to the store and no MLflow database is created.

Spec, trigger-param and pyarrow-visible data problems go through `study.validate(spec_path, overrides)`
(what `cerebro-ops validate`, `cerebro-ops run` and the DAG's first task call). Data problems only Spark
can see (they need every row: `reason: rows`) go through `study.prepare` with a local Spark session, and
every other case must already fail in validate.
One bad spec in a DAG folder never hides the other DAGs: see tests/airflow/test_dagbag.py.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cerebro_ops import study

from cerebro_ops.core import errors
from cerebro_ops.core.spec import load_spec

HERE = Path(__file__).parent
CASES = yaml.safe_load((HERE / "cases.yaml").read_text())
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


def base_spec(tmp: Path, source: str) -> dict:
    return {
        "name": "bad_inputs",
        "seed": 0,
        "data": {"source": source, "label": "label", "task": "binary", "numeric": ["x1", "x2"],
                 "categorical": ["color"]},
        "model": {"builder": "tests.builders_for_tests:tiny"},
        "search": {"method": "grid", "space": {"units": [4]}},
        "train": {"epochs": 1, "workers": 2, "metric": "val_accuracy"},
        "runtime": {"spark_master": "local[2]", "store": (tmp / "store").as_uri(),
                    "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}", "experiment": "bad-inputs"},
    }


def _frame(n=40):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n),
                         "color": ["red", "blue"] * (n // 2), "label": [0, 1] * (n // 2)})


def _write(tmp: Path, kind: str) -> str:
    """The data source of a case; returns its path."""
    p = tmp / "d.parquet"
    df = _frame()
    if kind == "good":
        df.to_parquet(p)
    elif kind == "missing":
        return str(tmp / "nope.parquet")
    elif kind == "no_label":
        df.drop(columns="label").to_parquet(p)
    elif kind == "no_x2":
        df.drop(columns="x2").to_parquet(p)
    elif kind == "non_numeric":
        df.assign(x1=["1.5", "abc"] * 20).to_parquet(p)
    elif kind == "all_null":
        df.assign(x2=pd.Series([None] * 40, dtype="float64")).to_parquet(p)
    elif kind == "no_rows":
        df.iloc[:0].to_parquet(p)
    elif kind == "corrupt_parquet":
        df.to_parquet(p)
        p.write_bytes(p.read_bytes()[:-40])  # a truncated footer, as a half-copied file would be
    elif kind == "corrupt_csv":
        p = tmp / "d.csv"
        p.write_bytes(b"\x00\x9f\xff\xfe garbage \x00\x01\x02")
    elif kind == "regression":
        df.assign(label=np.linspace(0.0, 1.0, 40)).to_parquet(p)
    elif kind == "duplicate_header":
        p = tmp / "d.csv"
        df.assign(extra=df.x1).to_csv(p, index=False, header=["x1", "x2", "color", "label", "x1"])
    elif kind == "string_label":
        p = tmp / "d.csv"
        df.assign(label=["late", "on time"] * 20).to_csv(p, index=False)
    elif kind == "three_classes":
        df.assign(label=[0, 1, 2, 1] * 10).to_parquet(p)
    elif kind == "one_class":
        df.assign(label=["a"] * 40).to_parquet(p)
    elif kind == "split_text":
        df.assign(is_val=["val", "train"] * 20).to_parquet(p)
    elif kind == "split_0_1_2":
        df.assign(is_val=[0, 1, 2, 0] * 10).to_parquet(p)
    elif kind == "split_all_train":
        df.assign(is_val=[False] * 40).to_parquet(p)
    elif kind == "empty_after_cleaning":  # each column has values, but every row misses one
        df.assign(x1=[1.0, None] * 20, x2=[None, 2.0] * 20).to_parquet(p)
    elif kind == "one_missing_in_ten":
        df.assign(x1=[None if i % 10 == 3 else v for i, v in enumerate(df.x1)]).to_parquet(p)
    elif kind == "infinity":
        df.assign(x2=[np.inf if i == 5 else -np.inf if i == 9 else v for i, v in enumerate(df.x2)]).to_parquet(p)
    elif kind == "label_all_null":
        p = tmp / "d.csv"
        df.assign(label=["NA"] * 40).to_csv(p, index=False)
    elif kind in ("dates_iso", "dates_us_style"):
        p = tmp / "d.csv"
        day = [f"2024-03-{(d - 1) % 28 + 1:02d}" if kind == "dates_iso" else f"03/{(d - 1) % 28 + 1:02d}/2024"
               for d in range(1, 41)]
        df.assign(when=[d if i % 7 else "" for i, d in enumerate(day, 1)]).to_csv(p, index=False)
    elif kind == "single_class":  # the only 0s are in rows that cleaning drops
        df.assign(label=[1, 0] * 20, x1=[1.0, None] * 20).to_parquet(p)
    elif kind == "uneven_array":
        pixels = [np.zeros(4)] * 38 + [np.zeros(3), np.zeros(5)]
        pd.DataFrame({"pixels": pixels, "label": [0, 1] * 20}).to_parquet(p)
    else:
        raise ValueError(kind)
    return str(p)


def _apply(spec: dict, case: dict, tmp: Path) -> dict:
    spec = copy.deepcopy(spec)
    for path, value in (case.get("set") or {}).items():
        *parents, last = path.split(".")
        d = spec
        for k in parents:
            d = d.setdefault(k, {})
        d[last] = value.replace("{tmp}", str(tmp)) if isinstance(value, str) else value
    for path in case.get("delete") or []:
        *parents, last = path.split(".")
        d = spec
        for k in parents:
            d = d[k]
        del d[last]
    return spec


def _files_under(p: Path) -> list[Path]:
    return [f for f in p.rglob("*") if f.is_file()] if p.exists() else []


@pytest.fixture(scope="module")
def spark():
    from cerebro_ops.spark.session import get_spark
    return get_spark("local[2]")


def _inputs(case: dict, tmp: Path) -> tuple[str, dict]:
    """Write the case's source and spec file; return the spec path and the trigger overrides."""
    source = _write(tmp, case.get("data", "good"))
    spec_path = tmp / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_apply(base_spec(tmp, source), case, tmp)))
    overrides = {k: v.replace("{tmp}", str(tmp)) if isinstance(v, str) and "{tmp}" in v else v
                 for k, v in (case.get("overrides") or {}).items()}
    return str(spec_path), overrides


def _assert_expected(err: Exception, case: dict) -> None:
    assert type(err) is getattr(errors, case["error"]), f"{type(err).__name__}: {err}"
    assert err.field == case["field"], str(err)
    msg = str(err)
    assert f"'{case['field']}'" in msg and "Fix:" in msg and err.fix.strip(), msg
    assert msg.count("Fix:") == 1, msg
    for fragment in case.get("says") or []:
        assert fragment in msg, msg


def _assert_nothing_done(tmp: Path) -> None:
    """No store files, no MLflow database."""
    assert _files_under(tmp / "store") == []
    assert not (tmp / "mlflow.db").exists()


ROW_LEVEL = [c for c in CASES if c.get("reason") == "rows"]


def test_corpus_is_big_enough_and_ids_unique():
    ids = [c["id"] for c in CASES]
    assert len(ids) >= 30 and len(set(ids)) == len(ids)


def test_every_prepare_case_says_why_validate_cannot_see_it():
    """Only problems that need every row may wait for Spark; a `schema` one is a gap in the pre-flight."""
    for c in CASES:
        assert c.get("stage", "validate") in ("validate", "prepare"), c["id"]
        if c.get("stage") == "prepare":
            assert c.get("reason") in ("rows", "schema"), f"{c['id']}: give reason: rows or schema"
        else:
            assert "reason" not in c, f"{c['id']}: reason is only for stage: prepare"
    assert ROW_LEVEL, "the corpus has row-level cases"


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"], marks=[pytest.mark.spark, pytest.mark.slow]
                                               if c.get("stage") == "prepare" else [])
                                  for c in CASES])
def test_bad_input(case, tmp_path, request):
    spec_path, overrides = _inputs(case, tmp_path)
    with pytest.raises(errors.CerebroError) as ei:
        if case.get("stage") == "prepare":
            spec = study.validate(spec_path, overrides)  # the pre-flight cannot see these
            study.prepare(spec, "r1", spark=request.getfixturevalue("spark"), overrides=overrides)
        else:
            study.validate(spec_path, overrides)
    _assert_expected(ei.value, case)
    # nothing was done: no store files, no MLflow database
    _assert_nothing_done(tmp_path)
    if case.get("stage") != "prepare":
        assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in CASES])
def test_validate_catches_all_but_row_level_problems(case, tmp_path):
    """`cerebro-ops validate` (no Spark) rejects every case except those only a pass over the rows shows,
    and those it lets through: their `reason: rows` is true."""
    spec_path, overrides = _inputs(case, tmp_path)
    if case.get("reason") == "rows":
        spec = study.validate(spec_path, overrides)
        assert spec.name == "bad_inputs"
    else:
        with pytest.raises(errors.CerebroError) as ei:
            study.validate(spec_path, overrides)
        _assert_expected(ei.value, case)
    _assert_nothing_done(tmp_path)
    assert not (tmp_path / "store").exists()


def test_good_base_spec_validates(tmp_path):
    """The corpus' starting point is valid: each case fails because of its one change."""
    source = _write(tmp_path, "good")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(base_spec(tmp_path, source)))
    spec = study.validate(str(spec_path))
    assert load_spec(spec_path).name == spec.name == "bad_inputs"
    assert not (tmp_path / "store").exists() and not (tmp_path / "mlflow.db").exists()
