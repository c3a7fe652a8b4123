"""Spec parsing: documented defaults, and one named error per bad field."""
import pytest

from cerebro_ops.errors import SpecError
from cerebro_ops.spec import load_spec, parse_spec

MIN = {"name": "t1", "data": {"source": "/tmp/x.parquet", "label": "y", "numeric": ["a", "b"]},
       "model": {"builder": "cerebro_ops.builders:mlp"},
       "search": {"method": "grid", "space": {"learning_rate": [0.001, 0.01]}}}


def with_(path, value):
    import copy
    raw = copy.deepcopy(MIN)
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return raw


def test_minimal_spec_gets_documented_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("CEREBRO_HOME", str(tmp_path / "home"))
    s = parse_spec(MIN)
    assert s.dag_id == "cerebro_t1"
    assert (s.train.epochs, s.train.workers, s.train.metric, s.train.direction) == (3, 2, "val_loss", "min")
    assert s.train.deterministic is True
    assert s.runtime.spark_master == "local[2]"
    assert s.runtime.store == (tmp_path / "home" / "store").as_uri()
    assert s.runtime.tracking_uri == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    assert s.runtime.experiment == "cerebro-t1"
    assert s.data.validation_fraction == 0.2 and s.data.task == "binary" and s.data.resolved_format == "parquet"
    assert s.seed == 0 and s.schedule is None and s.pruning.method == "none"


def test_accuracy_metric_is_maximised_by_default():
    s = parse_spec(with_("train.metric", "accuracy"))
    assert (s.train.metric, s.train.direction, s.metric_key) == ("val_accuracy", "max", "accuracy")


def test_workers_drive_default_master():
    assert parse_spec(with_("train.workers", 4)).runtime.spark_master == "local[4]"


def test_overrides_apply():
    s = parse_spec(MIN).with_overrides(seed=5, epochs=1, num_configs=7, source="/tmp/new.csv")
    assert (s.seed, s.train.epochs, s.search.num_configs, s.data.source) == (5, 1, 7, "/tmp/new.csv")
    assert s.data.resolved_format == "csv"


@pytest.mark.parametrize("path,value,field", [
    ("name", "Bad Name", "name"),
    ("colour", 1, "colour"),
    ("data.lable", "y", "data.lable"),
    ("train.epochs", 0, "train.epochs"),
    ("train.epochs", "3", "train.epochs"),
    ("train.workers", 0, "train.workers"),
    ("train.direction", "up", "train.direction"),
    ("search.method", "bayes", "search.method"),
    ("search.space", {}, "search.space"),
    ("search.space", {"lr": {"loguniform": [0, 1]}}, "search.space.lr"),
    ("search.space", {"lr": {"uniform": [1, 0.5]}}, "search.space.lr"),
    ("search.space", {"lr": {"gaussian": [0, 1]}}, "search.space.lr"),
    ("search.space", {"lr": {"choice": []}}, "search.space.lr"),
    ("model.builder", "os.system('x')", "model.builder"),
    ("runtime.store", "file:///tmp/../etc", "runtime.store"),
    ("runtime.spark_master", "mesos://x", "runtime.spark_master"),
    ("data.validation_fraction", 1.5, "data.validation_fraction"),
    ("data.numeric", "a", "data.numeric"),
    ("schedule", "every day", "schedule"),
    ("seed", True, "seed"),
])
def test_bad_field_names_field_and_fix(path, value, field):
    with pytest.raises(SpecError) as e:
        parse_spec(with_(path, value))
    assert e.value.field == field
    assert "Fix:" in str(e.value) and e.value.fix


def test_unknown_key_suggests_the_right_one():
    with pytest.raises(SpecError, match="did you mean 'data.label'"):
        parse_spec(with_("data.lable", "y"))


def test_grid_rejects_continuous_parameters():
    raw = with_("search.space", {"lr": {"uniform": [0.1, 0.2]}})
    with pytest.raises(SpecError, match="grid search needs discrete values"):
        parse_spec(raw)


def test_yaml_is_never_executed(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("!!python/object/apply:os.system ['touch %s']\n" % (tmp_path / "pwned"))
    with pytest.raises(SpecError):
        load_spec(p)
    assert not (tmp_path / "pwned").exists()


def test_shipped_specs_parse():
    import pathlib
    specs = sorted(pathlib.Path("dags/specs").glob("*.yaml")) + sorted(pathlib.Path("examples").glob("*.yaml"))
    assert specs, "no shipped specs found"
    for p in specs:
        s = load_spec(p)
        assert s.name and s.search.space
