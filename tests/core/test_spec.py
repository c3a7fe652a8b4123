"""Spec parsing: documented defaults, and one named error per bad field."""
import pytest

from cerebro_ops.core.errors import SpecError
from cerebro_ops.core.spec import load_spec, parse_spec

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


def test_split_keys_default_to_a_stratified_fraction():
    d = parse_spec(MIN).data
    assert (d.validation_column, d.stratify, d.validation_fraction) == (None, True, 0.2)


def test_validation_column_and_stratify_parse():
    raw = with_("data.validation_column", "is_val")
    raw["data"]["stratify"] = False
    d = parse_spec(raw).data
    assert (d.validation_column, d.stratify) == ("is_val", False)
    assert "is_val" not in d.feature_columns


@pytest.mark.parametrize("value,says", [("y", "is the label"), ("a", "is a feature"), ("", "column name"),
                                        (1, "column name")])
def test_bad_validation_column(value, says):
    with pytest.raises(SpecError, match=says) as e:
        parse_spec(with_("data.validation_column", value))
    assert e.value.field == "data.validation_column" and e.value.fix


def test_stratify_must_be_boolean():
    with pytest.raises(SpecError) as e:
        parse_spec(with_("data.stratify", "yes"))
    assert e.value.field == "data.stratify"


HEADER_NAMES = ["dep.delay", "arr time", "carrier-code", "2019_sales", "7", "température", "重量", " padded ",
                "a/b", "x[0]", "$col", "'quoted'", "#"]


def test_any_header_name_is_a_column_name():
    raw = with_("data.numeric", HEADER_NAMES[:6])
    raw["data"]["categorical"] = HEADER_NAMES[6:]
    raw["data"]["arrays"] = {"pixels.v2 (8x8)": [8, 8]}
    raw["data"]["label"] = "is delayed?"
    raw["data"]["validation_column"] = "split: val"
    d = parse_spec(raw).data
    assert d.feature_columns == (*HEADER_NAMES, "pixels.v2 (8x8)")
    assert (d.label, d.validation_column) == ("is delayed?", "split: val")


def test_yaml_file_round_trips_odd_column_names(tmp_path):
    import yaml
    raw = with_("data.numeric", HEADER_NAMES)
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(raw, allow_unicode=True))
    assert load_spec(p).data.numeric == tuple(HEADER_NAMES)


@pytest.mark.parametrize("key,value", [("numeric", ["a", ""]), ("numeric", [2019]), ("label", ""),
                                       ("label", 2019)])
def test_empty_or_non_string_column_names_are_rejected(key, value):
    with pytest.raises(SpecError) as e:
        parse_spec(with_(f"data.{key}", value))
    assert e.value.field == f"data.{key}" and '"2019"' in e.value.fix


@pytest.mark.parametrize("metric", [
    "val_acc", "acc", "accuracy", "val_accuracy", "binary_accuracy", "val_sparse_categorical_accuracy",
    "categorical_accuracy", "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "auc", "auc_1",
    "val_auc_3", "prc", "precision", "recall", "val_precision_1", "f1_score", "fbeta_score", "iou", "mean_iou",
    "binary_iou", "r2_score",
])
def test_accuracy_like_metrics_are_maximised(metric):
    assert parse_spec(with_("train.metric", metric)).train.direction == "max"


@pytest.mark.parametrize("metric", [
    "val_loss", "loss", "mse", "mae", "rmse", "val_root_mean_squared_error", "mean_absolute_percentage_error",
    "binary_crossentropy", "hinge", "kl_divergence", "poisson", "val_iou_loss", "accuracy_loss",
    "false_positives", "val_actual", "val_topology", "val_auction",
])
def test_losses_and_errors_are_minimised(metric):
    assert parse_spec(with_("train.metric", metric)).train.direction == "min"


def test_explicit_direction_wins_over_the_name():
    s = parse_spec(with_("train", {"metric": "val_acc", "direction": "min"}))
    assert (s.train.metric, s.train.direction) == ("val_acc", "min")


@pytest.mark.parametrize("cron", ["0 0 * * MON", "*/15 2-4 1,15 * 1-5", "0 3 * JAN-MAR SUN", "59 23 31 12 6",
                                  "@daily", "@once", "on_data_change"])
def test_valid_schedules(cron):
    assert parse_spec(with_("schedule", cron)).schedule == cron


@pytest.mark.parametrize("cron", ["99 99 * * *", "0 24 * * *", "* * 32 * *", "0 0 * * FUNDAY", "0 0 * *",
                                  "0 0 * * * *", "@fortnightly", "", 5])
def test_invalid_schedules_name_the_field(cron):
    with pytest.raises(SpecError) as e:
        parse_spec(with_("schedule", cron))
    assert e.value.field == "schedule" and "cron" in e.value.fix
