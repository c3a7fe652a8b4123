"""The UI plugin's pages, served by its FastAPI app with real JWTs of Airflow's simple auth manager: access
control (anonymous 401 / login redirect, no DAG access 403), the leaderboard's ranking and statuses, the
learning curves, the MOP Gantt chart, the live refresh and escaping of everything a user wrote."""
import importlib.util
import json
import re

import pytest

from .conftest import REPO
from .ui_store import add_epoch, write_run, write_spec

pytestmark = pytest.mark.airflow

XSS_DESCRIPTION = "<script>alert(1)</script> study"
XSS_PARAM = '"><img src=x onerror=alert(1)>'
RUN_PAGES = ["/studies/syn/runs/r1", "/studies/syn/runs/r1/curves", "/studies/syn/runs/r1/gantt"]
PAGES = ["/", "/studies/syn", *RUN_PAGES]
APIS = ["/api/studies/syn/runs/r1/version", "/api/studies/syn/runs/r1"]


@pytest.fixture(scope="module")
def plugin_mod():
    spec = importlib.util.spec_from_file_location("cerebro_plugin", REPO / "plugins" / "cerebro_plugin.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tokens():
    """JWTs issued by the simple auth manager: a viewer (may read every DAG) and a user without a role."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.utils import db

    db.resetdb()  # token checks look up revoked tokens in the metadata DB
    am = create_auth_manager()
    am.init()
    return {"viewer": am.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer")),
            "nobody": am.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))}


@pytest.fixture
def study(tmp_path, monkeypatch):
    """Study 'syn': run r1 finished (m04 pruned after epoch 2, m05 failed, m03 with an XSS param value), run r2
    training (2 of 4 epochs, separate eval units); a broken spec beside it."""
    specs, store = tmp_path / "specs", tmp_path / "store"
    write_spec(specs, "syn", store, configs=6, epochs=4, description=XSS_DESCRIPTION)
    (specs / "broken.yaml").write_text("name: [bad\n")
    write_run(store, "syn", "r1", configs=6, epochs=4, pruned={4: 2}, failed=(5,),
              params={3: {"learning_rate": 0.00123456, "note": XSS_PARAM}})
    write_run(store, "syn", "r2", configs=6, epochs=4, epochs_done=2, eval_in_train=False,
              created="2024-05-02T10:00:00")
    monkeypatch.setenv("CEREBRO_SPECS_DIR", str(specs))
    monkeypatch.setenv("CEREBRO_MLFLOW_UI_URL", "http://mlflow.example:5000/")
    return {"specs": specs, "store": store}


@pytest.fixture
def client(plugin_mod, tokens, study):
    from fastapi.testclient import TestClient

    c = TestClient(plugin_mod.create_app())
    c.cookies.set("_token", tokens["viewer"])
    return c


def rows(page: str) -> list[tuple[str, str]]:
    """(model id, rank) of the leaderboard rows, in page order."""
    return re.findall(r'<tr class="[^"]*" data-model="([^"]+)" data-rank="([^"]*)"', page)


# ---------------------------------------------------------------------------------------------- access
def test_plugin_shape(plugin_mod):
    from airflow.plugins_manager import AirflowPlugin

    plugin = plugin_mod.CerebroPlugin
    assert issubclass(plugin, AirflowPlugin) and plugin.name == "cerebro"
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/cerebro" and app["app"] is not None
    (view,) = plugin.external_views
    assert view["href"].endswith("/cerebro/") and view["destination"] == "nav" and view["url_route"] == "cerebro"


def test_anonymous_is_sent_to_login_or_gets_401(plugin_mod, tokens, study):
    from fastapi.testclient import TestClient

    anon = TestClient(plugin_mod.create_app())
    for path in PAGES:
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/auth/login?next=") and "testserver" in r.headers["location"]
        assert "m00" not in r.text
    for path in APIS:
        r = anon.get(path)
        assert r.status_code == 401 and "m00" not in r.text, path
    # a token that is not Airflow's is no session either
    anon.cookies.set("_token", "not-a-jwt")
    assert anon.get(APIS[0]).status_code == 401
    assert anon.get(PAGES[2], follow_redirects=False).status_code == 303
    assert anon.get(APIS[1], headers={"Authorization": "Bearer forged.token.value"}).status_code == 401


def test_user_without_dag_access_gets_403(plugin_mod, tokens, study):
    from fastapi.testclient import TestClient

    c = TestClient(plugin_mod.create_app())
    c.cookies.set("_token", tokens["nobody"])
    for path in PAGES + APIS:
        r = c.get(path)
        assert r.status_code == 403, path
        assert "m00" not in r.text and "0.8" not in r.text
    # the same answer for a study that does not exist: no probing of study names
    assert c.get("/studies/nope").status_code == 403
    # a Bearer header works like the cookie (and wins over it)
    r = c.get(APIS[0], headers={"Authorization": f"Bearer {tokens['viewer']}"})
    assert r.status_code == 200 and r.json()["live"] is False


def test_viewer_reads_every_page(client):
    for path in PAGES + APIS:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
    assert client.get("/studies/nope").status_code == 404
    assert client.get("/studies/syn/runs/zz").status_code == 404
    # a run id that cannot name a run folder is a missing run, not a server error
    assert client.get("/studies/syn/runs/...").status_code == 404
    assert client.get("/api/studies/syn/runs/.../version").status_code == 404
    index = client.get("/").text
    assert ">syn</a>" in index and ">broken</a>" in index and "not valid YAML" in index


# ---------------------------------------------------------------------------------------------- leaderboard
def test_leaderboard_ranks_statuses_and_links(client):
    page = client.get("/studies/syn/runs/r1").text
    # accuracy is maximised: m00 best; the pruned m04 keeps its best value (rank 5); the failed m05 is unranked
    assert rows(page) == [("m00", "1"), ("m01", "2"), ("m02", "3"), ("m03", "4"), ("m04", "5"), ("m05", "")]
    assert "pruned at epoch 2" in page and "failed: ConfigFailed: loss is NaN at hop 0" in page
    assert page.count(">finished</span>") == 4
    assert "learning_rate=0.001235" in page and "0.00123456" not in page  # 4 significant digits
    assert "champion v3" in page and 'id="champion-version" href="http://mlflow.example:5000/#/models/syn/versions/3"' in page
    assert "promoted: val_accuracy 0.905 &gt; 0.88 of v2" in page
    # what prepare did to the rows, escaped like every user string
    assert ('<summary>Data: rows read 1040, used 1000 (train 800, validation 200), dropped 40 (missing label 40)'
            '</summary>') in page
    assert "<li>&#39;a &lt;b&gt;&#39;: 312 missing (30.0%) -&gt; imputed with the train median 1.5 + a 0/1 missing " \
           "indicator</li>" in page
    # no experiment id without a tracking store: MLflow's run route (it redirects to the experiment)
    assert 'href="http://mlflow.example:5000/#/runs/child-m00"' in page
    assert 'href="http://mlflow.example:5000/#/runs/parent-r1"' in page


def test_mlflow_links_name_the_experiment(client, monkeypatch):
    import cerebro_ops.ui.links as links

    monkeypatch.setattr(links, "experiment_id", lambda uri, name: "7" if name == "exp-syn" else None)
    page = client.get("/studies/syn/runs/r1").text
    assert 'href="http://mlflow.example:5000/#/experiments/7/runs/child-m03"' in page
    assert 'href="http://mlflow.example:5000/#/experiments/7/runs/parent-r1"' in page


def test_experiment_lookup_never_creates_a_tracking_db(tmp_path):
    from cerebro_ops.ui.links import experiment_id

    db = tmp_path / "mlflow.db"
    assert experiment_id(f"sqlite:///{db}", "exp") is None and not db.exists()


def test_running_models_without_a_metric_come_after_the_ranked(client, study):
    from cerebro_ops.core.run_state import RunRepository

    repo = RunRepository(study["store"].as_uri(), "syn", "r2")
    state = repo.load()
    state.models["m01"].history.clear()  # e.g. a config that joined later: no epoch finished yet
    repo.save(state)
    page = client.get("/studies/syn/runs/r2").text
    assert rows(page) == [("m00", "1"), ("m02", "2"), ("m03", "3"), ("m04", "4"), ("m05", "5"), ("m01", "")]
    assert page.count("running (epoch 2 done)") == 5 and ">running</span>" in page


# ---------------------------------------------------------------------------------------------- curves
def test_learning_curves_one_line_per_config(client):
    page = client.get("/studies/syn/runs/r1/curves").text
    charts = re.findall(r'<svg class="curves" data-key="([^"]+)"', page)
    assert charts == ["val_accuracy", "train_loss", "val_loss"]
    first = page.split('data-key="val_accuracy"')[1].split("</svg>")[0]
    curves = re.findall(r'<g class="(curve[^"]*)" data-model="([^"]+)" data-status="([^"]+)" data-points="(\d+)"', first)
    # the failed m05 has no epoch: no curve; the best (m00) is drawn last, highlighted
    assert sorted(m for _, m, _, _ in curves) == ["m00", "m01", "m02", "m03", "m04"]
    assert curves[-1] == ("curve best", "m00", "finished", "4")
    assert ("curve", "m04", "pruned", "2") in curves  # the pruned curve stops at its epoch, with a cross
    assert first.count('class="stop"') == 1 and "pruned @2" in first
    assert "<script" not in page  # a finished run: no polling


# ---------------------------------------------------------------------------------------------- gantt
def _records(store, run_id):
    from cerebro_ops.store import run_store

    st = run_store(store.as_uri(), "syn", run_id)
    if st.exists("hoplog.jsonl"):
        return [json.loads(x) for x in st.read_bytes("hoplog.jsonl").decode().splitlines()]
    return [st.read_json(f"hops/{e}/{n}") for e in st.listdir("hops") if e.startswith("e")
            for n in st.listdir(f"hops/{e}")]


def test_gantt_bar_per_hop_eval_distinct_idle_and_efficiency(client, study):
    recs = _records(study["store"], "r1")
    page = client.get("/studies/syn/runs/r1/gantt").text
    assert page.count('<g class="hop train"') == len(recs) == 36
    # evaluation inside the last train hop of each model and epoch: a hatched part of that bar
    assert page.count('class="eval-part"') == sum(1 for r in recs if r.get("eval_s")) > 0
    assert page.count('class="idle"') > 0
    span = sum(max(r["end"] for r in recs if r["epoch"] == e) - min(r["start"] for r in recs if r["epoch"] == e)
               for e in range(1, 5))
    busy = sum(r["end"] - r["start"] for r in recs)
    assert f'id="busy-fraction">{100 * busy / (2 * span):.1f}%<' in page
    overhead = sum(r["end"] - r["start"] - r["train_s"] - r.get("eval_s", 0) for r in recs) / len(recs)
    assert f'id="hop-overhead">{overhead * 1000:.0f} ms<' in page
    assert len(re.findall(r">epoch \d · [\d.]+ m?s</text>", page)) == 4  # one mark per epoch
    # ?scale=epoch: every epoch the same width, the same bars
    equal = client.get("/studies/syn/runs/r1/gantt?scale=epoch").text
    assert "<b>each epoch the same width</b>" in equal and equal.count('<g class="hop train"') == 36
    marks = [float(x) for x in re.findall(r'<line x1="([\d.]+)" x2="[\d.]+" y1="18"', equal)]
    assert len(marks) == 4 and len({round(b - a, 1) for a, b in zip(marks, marks[1:])}) == 1

    recs2 = _records(study["store"], "r2")  # separate eval units
    page2 = client.get("/studies/syn/runs/r2/gantt").text
    evals = sum(1 for r in recs2 if r["kind"] == "eval")
    assert page2.count('<g class="hop eval"') == evals > 0
    assert page2.count('<g class="hop ') == len(recs2)


# ---------------------------------------------------------------------------------------------- live
def test_a_training_run_refreshes_from_the_store(client, study):
    page = client.get("/studies/syn/runs/r2/curves")
    csp = page.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp).group(1)
    assert f'<script nonce="{nonce}">' in page.text and "/api/studies/syn/runs/r2/version" in page.text
    assert "refreshing while the run trains" in page.text
    before = client.get("/api/studies/syn/runs/r2/version").json()
    assert before["live"] is True and before["epochs_done"] == 2
    assert f'var version = "{before["version"]}"' in page.text
    assert add_epoch(study["store"], "syn", "r2") == 3
    after = client.get("/api/studies/syn/runs/r2/version").json()
    assert after["version"] != before["version"] and after["epochs_done"] == 3
    fresh = client.get("/studies/syn/runs/r2/curves").text
    assert 'data-model="m00" data-status="running" data-points="3"' in fresh


# ---------------------------------------------------------------------------------------------- runs list
def test_runs_list(client):
    page = client.get("/studies/syn").text
    runs = re.findall(r'/studies/syn/runs/(r\d)">', page)
    assert runs == ["r2", "r1"]  # newest first
    assert "training: epoch 3/4" in page and "finished: champion v3 promoted" in page
    assert "seed=0" in page and "epochs=4" in page
    assert 'href="/dags/cerebro_syn/runs/r1" target="_top">DAG run</a>' in page
    assert "0.8209" in page  # r1's best val_accuracy (m00 after 4 epochs)


# ---------------------------------------------------------------------------------------------- escaping
def test_user_strings_are_escaped(client):
    for path in PAGES:
        page = client.get(path).text
        assert "<script>alert(1)" not in page and "<img src=x" not in page, path
        # the only scripts are the page's own, carrying the response's nonce
        assert all('nonce="' in tag for tag in re.findall(r"<script[^>]*>", page)), path
    assert "&lt;script&gt;alert(1)&lt;/script&gt; study" in client.get("/studies/syn").text
    board = client.get("/studies/syn/runs/r1").text
    assert "note=&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in board


# ------------------------------------------------------------------------------- access by the DAG that exists
def test_a_broken_spec_is_checked_on_its_placeholder_dag(plugin_mod, client, monkeypatch):
    """A broken spec's DAG is cerebro_<stem>_invalid: access to it (not to a cerebro_<stem> that exists nowhere)
    decides who sees the study."""
    checked = []

    def only(*dag_ids):
        def can_read(user, dag_id):
            checked.append(dag_id)
            return dag_id in dag_ids
        return can_read

    monkeypatch.setattr(plugin_mod, "can_read_dag", only("cerebro_broken_invalid"))
    r = client.get("/studies/broken")
    assert r.status_code == 200 and "broken" in r.text
    assert checked == ["cerebro_broken_invalid"]
    monkeypatch.setattr(plugin_mod, "can_read_dag", only("cerebro_broken", "cerebro_syn"))
    assert client.get("/studies/broken").status_code == 403
    index = client.get("/")
    assert index.status_code == 200 and "/studies/syn" in index.text and "/studies/broken" not in index.text


def test_store_errors_are_not_shown_raw(plugin_mod, client, monkeypatch, caplog):
    from cerebro_ops.ui import views

    def unreadable(spec):
        raise OSError("postgresql://cerebro:pw-123@db.internal:5432 refused /srv/private/store")

    monkeypatch.setattr(views, "run_states", unreadable)
    page = client.get("/")
    assert page.status_code == 200
    assert "pw-123" not in page.text and "db.internal" not in page.text and "/srv/private" not in page.text
    assert "its run store could not be read" in page.text
    assert any("pw-123" in (r.exc_text or "") or "could not be read" in r.getMessage() for r in caplog.records)
