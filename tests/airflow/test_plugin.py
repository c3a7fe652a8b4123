"""The leaderboard plugin imports, registers with Airflow's plugin manager shape, and renders."""
import importlib.util

import pytest

from .conftest import REPO, write_spec

pytestmark = pytest.mark.airflow


@pytest.fixture
def plugin_mod():
    spec = importlib.util.spec_from_file_location("cerebro_plugin", REPO / "plugins" / "cerebro_plugin.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_plugin_shape(plugin_mod):
    from airflow.plugins_manager import AirflowPlugin

    plugin = plugin_mod.CerebroPlugin
    assert issubclass(plugin, AirflowPlugin) and plugin.name == "cerebro"
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/cerebro" and app["app"] is not None
    (view,) = plugin.external_views
    assert view["href"].endswith("/cerebro/") and view["name"]


def test_leaderboard_page(plugin_mod, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    specs = tmp_path / "specs"
    specs.mkdir()
    write_spec(specs, "t1", extra=f"runtime: {{store: {(tmp_path / 'store').as_uri()}}}\n")
    (specs / "broken.yaml").write_text("name: [bad\n")
    monkeypatch.setenv("CEREBRO_SPECS_DIR", str(specs))
    client = TestClient(plugin_mod.create_app())
    page = client.get("/")
    assert page.status_code == 200
    assert "<h2>t1</h2>" in page.text and "No runs yet" in page.text
    assert "<h2>broken</h2>" in page.text and "not valid YAML" in page.text
    data = client.get("/api/leaderboard").json()
    assert [s["study"] for s in data["studies"]] == ["broken", "t1"]


def test_leaderboard_with_a_run(plugin_mod, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    specs = tmp_path / "specs"
    specs.mkdir()
    write_spec(specs, "t1", extra=f"runtime: {{store: {(tmp_path / 'store').as_uri()}}}\n")
    monkeypatch.setenv("CEREBRO_SPECS_DIR", str(specs))
    from cerebro_ops.spec import load_spec
    from cerebro_ops.store import run_store

    spec = load_spec(specs / "t1.yaml")
    st = run_store(spec.runtime.store, "t1", "r1")
    st.write_json("state.json", {
        "run_id": "r1", "created": "2024-01-01T00:00:00", "configs": {"m1": {"learning_rate": 0.01},
                                                                     "m2": {"learning_rate": 0.001}},
        "status": {"m1": "RUNNING", "m2": "RUNNING"}, "reasons": {}, "epochs": 3, "epochs_done": 1,
        "history": {"m1": [{"epoch": 1, "val_loss": 0.5, "ckpt": None}],
                    "m2": [{"epoch": 1, "val_loss": 0.4, "ckpt": None}]},
        "mlflow": {"parent": "abc123"}})
    page = TestClient(plugin_mod.create_app()).get("/")
    assert page.status_code == 200, page.text
    assert "r1" in page.text and "abc123" in page.text and "1/3" in page.text
    assert page.text.index("m2") < page.text.index("m1")  # lower val_loss ranks first
