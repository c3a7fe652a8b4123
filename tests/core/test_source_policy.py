"""A trigger's `source` stays under the spec's allow-list; errors about it never quote the file's cells."""
from __future__ import annotations

import os

import pytest

from cerebro_ops import study
from cerebro_ops.core.errors import DataError, ParamsError
from cerebro_ops.core.params import validate_overrides
from cerebro_ops.core.spec import SpecError, parse_spec


def make_spec(source: str, allowed=None, **data):
    d = {"source": source, "label": "y", "numeric": ["a"], **data}
    if allowed is not None:
        d["allowed_sources"] = allowed
    return parse_spec({"name": "t1", "data": d, "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "random", "num_configs": 4,
                                  "space": {"learning_rate": {"loguniform": [0.0001, 0.1]}}}})


def refused(spec, source) -> ParamsError:
    with pytest.raises(ParamsError) as ei:
        validate_overrides(spec, {"source": source})
    assert ei.value.field == "source"
    return ei.value


def test_default_allow_list_is_the_directory_of_the_specs_source(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "escape").symlink_to("/etc")
    spec = make_spec("data/train.csv")
    for ok in ("data/other.csv", "data/sub/part.parquet", str(tmp_path / "data" / "x.csv"),
               (tmp_path / "data" / "x.csv").as_uri(), "./data/./y.csv"):
        assert validate_overrides(spec, {"source": ok}) == {"source": ok}
    for bad in ("/home/someone/private.csv", "data/../secret.csv", "data/escape/passwd", "datax/a.csv",
                "../data/train.csv", "ftp://internal/data/train.csv", "s3://bucket/data/train.csv",
                "file:///etc/passwd"):
        err = refused(spec, bad)
        assert f"is outside the data this study may read: {tmp_path / 'data'} (the default: the directory of " \
               "the spec's data.source)" in str(err)
        assert "data.allowed_sources" in err.fix


def test_explicit_allow_list_replaces_the_default(tmp_path):
    spec = make_spec("s3://bucket/tables/train.parquet", allowed=["s3://bucket/tables", str(tmp_path / "shared")])
    for ok in ("s3://bucket/tables/2024/part.parquet", "S3://BUCKET/tables/x.parquet",
               str(tmp_path / "shared" / "a.csv")):
        assert validate_overrides(spec, {"source": ok})["source"] == ok
    for bad in ("s3://other/tables/x.parquet", "s3://bucket/tables/../secret/x.parquet", "gs://bucket/tables/x",
                "s3://bucket/tablesx/y", str(tmp_path / "elsewhere.csv"), "/tmp/x.parquet"):
        err = refused(spec, bad)
        assert f"s3://bucket/tables, {tmp_path / 'shared'}" in str(err) and "the default" not in str(err)


def test_the_specs_own_source_and_the_default_always_pass(tmp_path):
    spec = make_spec("ftp://internal/x.csv", allowed=[str(tmp_path)])
    assert validate_overrides(spec, {"source": "ftp://internal/x.csv"}) == {"source": "ftp://internal/x.csv"}


@pytest.mark.parametrize("allowed", ["s3://b", [3], [""], ["/data/a\x00b"]])
def test_allowed_sources_must_be_a_list_of_prefixes(allowed):
    with pytest.raises(SpecError) as ei:
        make_spec("/tmp/x.csv", allowed=allowed)
    assert ei.value.field == "data.allowed_sources"


class NoSpark:
    """A Spark session that must not be touched."""

    def __getattr__(self, name):
        raise AssertionError(f"Spark was used ({name}) for a refused trigger")


def test_source_outside_the_allow_list_is_refused_before_spark_starts(tmp_path):
    spec = parse_spec({"name": "t1", "data": {"source": str(tmp_path / "data" / "train.csv"), "label": "y",
                                              "numeric": ["a"]},
                       "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "random", "num_configs": 4,
                                  "space": {"learning_rate": {"loguniform": [0.0001, 0.1]}}},
                       "runtime": {"store": (tmp_path / "store").as_uri(),
                                   "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}})
    with pytest.raises(ParamsError) as ei:
        study.prepare(spec, "r1", spark=NoSpark(), overrides={"source": "/etc/passwd"})
    assert ei.value.field == "source"
    with pytest.raises(ParamsError) as ei:
        study.prepare(spec, "r1", spark=NoSpark(), overrides={"num_configs": 5})
    assert ei.value.field == "num_configs"
    assert not (tmp_path / "store").exists() and not (tmp_path / "mlflow.db").exists()


SPEC_YAML = """name: t1
data:
  source: {source}
  label: y
  task: binary
  numeric: [a]
model:
  builder: cerebro_ops.builders:mlp
search:
  method: random
  num_configs: 4
  space:
    learning_rate: {{loguniform: [0.001, 0.1]}}
"""


def test_errors_about_an_overridden_source_quote_no_cells(tmp_path):
    (tmp_path / "data").mkdir()
    good = tmp_path / "data" / "train.csv"
    good.write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    leaky = tmp_path / "data" / "other.csv"
    leaky.write_text("a,y\n" + "".join(f"{i},secret-{i % 3}\n" for i in range(20)))
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(SPEC_YAML.format(source=good))
    assert study.validate(str(spec_path), check_model=False).data.source == str(good)
    with pytest.raises(DataError) as ei:
        study.validate(str(spec_path), {"source": str(leaky)}, check_model=False)
    assert ei.value.field == "data.task" and "secret" not in str(ei.value)
    assert "details are not shown" in str(ei.value) and ei.value.__cause__ is None
    # the same file as the spec's own source: its author sees the details
    spec_path.write_text(SPEC_YAML.format(source=leaky))
    with pytest.raises(DataError) as ei:
        study.validate(str(spec_path), check_model=False)
    assert "secret-" in str(ei.value)


def test_cli_validate_refuses_more_configs_than_the_spec(tmp_path, capsys):
    from cerebro_ops.cli import main

    (tmp_path / "train.csv").write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(SPEC_YAML.format(source=tmp_path / "train.csv"))
    assert main(["validate", str(spec_path), "--num-configs", "5000", "--no-model-check"]) == 2
    err = capsys.readouterr().err
    assert "trigger param 'num_configs': 5000 is out of range. Fix: use an integer in [1, 4]" in err
    assert main(["validate", str(spec_path), "--num-configs", "4", "--no-model-check"]) == 0
    assert main(["validate", str(spec_path), "--source", "/etc/passwd", "--no-model-check"]) == 2
    assert "trigger param 'source': is outside the data this study may read" in capsys.readouterr().err


def test_cli_run_refuses_a_bad_source_before_spark_starts(tmp_path, capsys, monkeypatch):
    """`run` starts the JVM in the background while TensorFlow loads, but only after the spec, the overrides
    and the source passed: a refused source costs no Spark session."""
    from cerebro_ops.cli import main

    started = []
    monkeypatch.setattr(study, "spark_session", lambda spec, spark: started.append(spec.name))
    (tmp_path / "train.csv").write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(20)))
    (tmp_path / "other.csv").write_text("a,y\n" + "".join(f"{i},c{i % 3}\n" for i in range(20)))
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(SPEC_YAML.format(source=tmp_path / "train.csv"))
    assert main(["run", str(spec_path), "--source", "/etc/passwd"]) == 2
    assert "trigger param 'source': is outside the data this study may read" in capsys.readouterr().err
    assert main(["run", str(spec_path), "--source", str(tmp_path / "other.csv")]) == 2  # 3 labels, task binary
    assert "data.task" in capsys.readouterr().err
    assert started == [] and not (tmp_path / "mlflow.db").exists()
