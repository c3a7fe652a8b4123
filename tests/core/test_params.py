import pytest

from cerebro_ops.core.errors import ParamsError
from cerebro_ops.core.params import trigger_params, trigger_schema, validate_overrides
from cerebro_ops.core.spec import parse_spec


def _tpe_spec(num_configs, batch_size=0):
    return parse_spec({"name": "t1", "data": {"source": "/tmp/x.parquet", "label": "y", "numeric": ["a"]},
                       "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "tpe", "num_configs": num_configs, "batch_size": batch_size,
                                  "space": {"learning_rate": {"loguniform": [0.0001, 0.1]}}},
                       "train": {"epochs": 2}})


@pytest.fixture
def spec():
    return parse_spec({"name": "t1", "seed": 7,
                       "data": {"source": "/tmp/x.parquet", "label": "y", "numeric": ["a"]},
                       "model": {"builder": "cerebro_ops.builders:mlp"},
                       "search": {"method": "random", "num_configs": 6,
                                  "space": {"learning_rate": {"loguniform": [0.0001, 0.1]}}},
                       "train": {"epochs": 5}})


def test_trigger_params_schema(spec):
    p = trigger_params(spec)
    assert set(p) == {"seed", "epochs", "num_configs", "source"}
    assert p["seed"] == {**p["seed"], "type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 7}
    assert p["epochs"]["minimum"] == 1 and p["epochs"]["maximum"] == 5 and p["epochs"]["default"] == 5
    assert p["num_configs"]["maximum"] == 6 and p["num_configs"]["default"] == 6
    assert p["source"]["type"] == "string" and p["source"]["maxLength"] == 1024
    assert p["source"]["default"] == "/tmp/x.parquet"
    for d in p.values():
        assert d["title"] and d["description"]


def test_valid_overrides_pass(spec):
    raw = {"seed": 0, "epochs": 2, "num_configs": 6, "source": " /tmp/new.parquet "}
    assert validate_overrides(spec, raw) == {"seed": 0, "epochs": 2, "num_configs": 6,
                                             "source": "/tmp/new.parquet"}
    assert validate_overrides(spec, {}) == {}
    assert validate_overrides(spec, None) == {}
    assert validate_overrides(spec, {"seed": None}) == {}
    assert validate_overrides(spec, {"epochs": 5, "seed": 2**31 - 1}) == {"epochs": 5, "seed": 2**31 - 1}


def test_defaults_validate(spec):
    defaults = {k: v["default"] for k, v in trigger_params(spec).items()}
    assert validate_overrides(spec, defaults) == defaults


@pytest.mark.parametrize("raw, field", [
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"__import__": "os"}, "__import__"),
    ({"epochs": True}, "epochs"),
    ({"seed": False}, "seed"),
    ({"epochs": "3"}, "epochs"),
    ({"num_configs": "12"}, "num_configs"),
    ({"epochs": 2.5}, "epochs"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": 6}, "epochs"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**31}, "seed"),
    ({"num_configs": 0}, "num_configs"),
    ({"num_configs": 10001}, "num_configs"),
    ({"num_configs": 7}, "num_configs"),
    ({"source": "/home/someone/private.csv"}, "source"),
    ({"source": 3}, "source"),
    ({"source": ""}, "source"),
    ({"source": "x" * 1025}, "source"),
])
def test_bad_overrides_raise_naming_field(spec, raw, field):
    with pytest.raises(ParamsError) as ei:
        validate_overrides(spec, raw)
    assert ei.value.field == field
    assert field in str(ei.value) and "Fix:" in str(ei.value)


@pytest.mark.parametrize("raw, message", [
    ({"learning_rate": 5}, "trigger param 'learning_rate': is not a known param. "
                           "Fix: use one of seed, epochs, num_configs, source"),
    ({"epochs": "3"}, "trigger param 'epochs': must be an integer, got str '3'. "
                      "Fix: write a whole number in [1, 5] without quotes"),
    ({"seed": True}, "trigger param 'seed': must be an integer, got bool True. "
                     "Fix: write a whole number in [0, 2147483647] without quotes"),
    ({"epochs": 6}, "trigger param 'epochs': 6 is out of range. Fix: use an integer in [1, 5]"),
    ({"source": 3}, "trigger param 'source': must be a string, got int 3. Fix: write a path or URI as text"),
    ({"source": "  "}, "trigger param 'source': is empty. Fix: give a path or URI, or leave the default "
                       "'/tmp/x.parquet'"),
    ({"source": "x" * 1025}, "trigger param 'source': is 1025 characters long. Fix: use at most 1024 characters"),
    ({"source": "/data/a\x00.csv"}, "trigger param 'source': contains control characters. "
                                    "Fix: write a plain path or URI"),
])
def test_messages(spec, raw, message):
    with pytest.raises(ParamsError) as ei:
        validate_overrides(spec, raw)
    assert str(ei.value) == message


def test_first_bad_key_in_trigger_order_is_reported(spec):
    with pytest.raises(ParamsError) as ei:
        validate_overrides(spec, {"epochs": 2, "source": "", "learning_rate": 5})
    assert ei.value.field == "source"
    with pytest.raises(ParamsError) as ei:
        validate_overrides(spec, {"learning_rate": 5, "epochs": 0})
    assert ei.value.field == "learning_rate"


def test_whole_float_is_an_integer_as_in_json_schema(spec):
    """Airflow's form validates with the same schema, where 2.0 is an integer: so do we (as the int 2)."""
    out = validate_overrides(spec, {"epochs": 2.0})
    assert out == {"epochs": 2} and type(out["epochs"]) is int


def test_schema_is_the_params_and_nothing_else(spec):
    schema = trigger_schema(spec)
    assert schema["properties"] == trigger_params(spec)
    assert schema["additionalProperties"] is False and schema["type"] == "object"


@pytest.mark.parametrize("spec_n, batch, n, ok", [
    (9, 0, 9, True), (9, 0, 6, True),                      # 3 batches each (3 of 3, 3 of 2)
    (9, 0, 8, False), (9, 0, 7, False),                    # 4 batches of 2 (the automatic size is n // 3)
    (5, 2, 5, True), (5, 2, 1, True),                      # a fixed batch size: at most 3 batches of 2
])
def test_tpe_run_needs_no_more_batches_than_the_plan(spec_n, batch, n, ok):
    spec = _tpe_spec(spec_n, batch)
    if ok:
        assert validate_overrides(spec, {"num_configs": n}) == {"num_configs": n}
        return
    with pytest.raises(ParamsError) as ei:
        validate_overrides(spec, {"num_configs": n})
    assert ei.value.field == "num_configs"
    assert f"{n} configs make 4 TPE batches; the DAG of this spec has 3" in str(ei.value)
    fix = {(9, 8): "use 6 or 9 configs", (9, 7): "use 6 or 9 configs"}
    assert fix[(spec_n, n)] in ei.value.fix


def test_other_methods_take_any_num_configs_up_to_the_specs(spec):
    assert validate_overrides(spec, {"num_configs": 5}) == {"num_configs": 5}


def test_non_mapping_rejected(spec):
    with pytest.raises(ParamsError):
        validate_overrides(spec, ["epochs", 2])


def test_with_overrides_roundtrip(spec):
    eff = spec.with_overrides(**validate_overrides(spec, {"epochs": 2, "seed": 3, "source": "/tmp/d.csv"}))
    assert (eff.train.epochs, eff.seed, eff.data.source) == (2, 3, "/tmp/d.csv")


def test_num_configs_above_the_specs_is_refused(spec):
    """A trigger may not multiply the study's MLflow runs and hops: at most the spec's search.num_configs."""
    for n in (7, 5000, 10000):
        with pytest.raises(ParamsError) as ei:
            validate_overrides(spec, {"num_configs": n})
        assert str(ei.value) == f"trigger param 'num_configs': {n} is out of range. Fix: use an integer in [1, 6]"
