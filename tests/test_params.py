import pytest

from cerebro_ops.errors import ParamsError
from cerebro_ops.params import trigger_params, validate_overrides
from cerebro_ops.spec import parse_spec


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
    assert p["num_configs"]["maximum"] == 10000 and p["num_configs"]["default"] == 6
    assert p["source"]["type"] == "string" and p["source"]["maxLength"] == 1024
    assert p["source"]["default"] == "/tmp/x.parquet"
    for d in p.values():
        assert d["title"] and d["description"]


def test_valid_overrides_pass(spec):
    raw = {"seed": 0, "epochs": 2, "num_configs": 10000, "source": " /data/new.parquet "}
    assert validate_overrides(spec, raw) == {"seed": 0, "epochs": 2, "num_configs": 10000,
                                             "source": "/data/new.parquet"}
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
    ({"epochs": 2.0}, "epochs"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": 6}, "epochs"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**31}, "seed"),
    ({"num_configs": 0}, "num_configs"),
    ({"num_configs": 10001}, "num_configs"),
    ({"source": 3}, "source"),
    ({"source": ""}, "source"),
    ({"source": "x" * 1025}, "source"),
])
def test_bad_overrides_raise_naming_field(spec, raw, field):
    with pytest.raises(ParamsError) as ei:
        validate_overrides(spec, raw)
    assert ei.value.field == field
    assert field in str(ei.value) and "Fix:" in str(ei.value)


def test_non_mapping_rejected(spec):
    with pytest.raises(ParamsError):
        validate_overrides(spec, ["epochs", 2])


def test_with_overrides_roundtrip(spec):
    eff = spec.with_overrides(**validate_overrides(spec, {"epochs": 2, "seed": 3, "source": "/d.csv"}))
    assert (eff.train.epochs, eff.seed, eff.data.source) == (2, 3, "/d.csv")
