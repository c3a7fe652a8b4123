"""The plugin's pages in headless Chromium against a real `airflow api-server` and a real finished study run:
login, the runs list, leaderboard, learning curves and Gantt chart, the live refresh of a training run, and
XSS-looking user strings shown as text. Screenshots go to the test's tmp dir (and, with
CEREBRO_UI_SCREENSHOTS_TO_DOCS=1, to docs/img/ for the README)."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO, USERS
from .study_spec import XSS_DESCRIPTION, XSS_PARAM

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS_IMG = REPO / "docs" / "img"
MAX_PNG = 150_000


def login(driver, base: str, user: str, next_path: str = "/cerebro/") -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base + next_path)
    wait = WebDriverWait(driver, 60)
    wait.until(ec.presence_of_element_located((By.NAME, "username")))  # redirected to Airflow's login page
    assert "/auth/login" in driver.current_url
    driver.find_element(By.NAME, "username").send_keys(user)
    driver.find_element(By.NAME, "password").send_keys(USERS[user][1])
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda d: d.current_url.startswith(base + next_path.split("?")[0]) and "/auth/login" not in d.current_url)


def no_alert(driver) -> None:
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018 - raises when no alert is open


def shoot(driver, tmp_path: Path, name: str) -> Path:
    """A screenshot in the tmp dir; copied to docs/img/ when asked (each under 150 KB)."""
    path = tmp_path / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 5_000
    if os.environ.get("CEREBRO_UI_SCREENSHOTS_TO_DOCS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        _small_png(path, DOCS_IMG / f"{name}.png")
    return path


def _small_png(src: Path, dst: Path) -> None:
    from PIL import Image

    img = Image.open(src).convert("RGB")
    for colours in (256, 128, 64, 32):
        img.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
        if dst.stat().st_size < MAX_PNG:
            return
    raise AssertionError(f"{dst} stays over {MAX_PNG} bytes")


def wait_for(driver, predicate, timeout: float = 30.0):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # The live refresh swaps the page's content: an element read mid-swap is stale; read again next poll.
    return WebDriverWait(driver, timeout, poll_frequency=0.25,
                         ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: predicate(d))


def test_pages_of_a_finished_run(api_server, finished_study, browser, tmp_path):
    from selenium.webdriver.common.by import By

    from cerebro_ops.core.run_state import RunRepository

    base, run_id = api_server["base"], finished_study["run_id"]
    state = RunRepository(finished_study["store"].as_uri(), "uidemo", run_id).load()
    run_url = f"{base}/cerebro/studies/uidemo/runs/{run_id}"
    login(browser, base, "viewer")

    # studies index and runs list: the description and the run, as text
    assert browser.find_element(By.CSS_SELECTOR, "#studies").text.count("uidemo") >= 1
    assert XSS_DESCRIPTION in browser.find_element(By.TAG_NAME, "main").text
    no_alert(browser)
    browser.get(f"{base}/cerebro/studies/uidemo")
    runs = browser.find_element(By.ID, "runs")
    assert run_id in runs.text and "finished: champion v1 promoted" in runs.text
    assert "seed=0" in runs.text and "epochs=3" in runs.text
    assert browser.find_element(By.ID, "description").text == XSS_DESCRIPTION
    no_alert(browser)
    shoot(browser, tmp_path, "ui-runs")

    # leaderboard: rank order by val_accuracy (max), the champion version and its MLflow link
    browser.get(run_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "#leaderboard tr[data-model]")
    ranked = [(r.get_attribute("data-model"), r.get_attribute("data-rank")) for r in rows]
    best = {m: max(h.value("val_accuracy") for h in rec.history) for m, rec in state.models.items()}
    expected = sorted(best, key=lambda m: (-best[m], m))
    assert [m for m, _ in ranked] == expected and [k for _, k in ranked] == ["1", "2", "3", "4"]
    decision = browser.find_element(By.ID, "decision").text
    assert "Champion promoted" in decision and "uidemo v1" in decision
    summary = state.meta["summary"]  # what prepare did to the rows, one line on the run's page
    assert browser.find_element(By.CSS_SELECTOR, "#data-summary summary").text == (
        f"Data: rows read {summary['rows_read']}, used {summary['rows_used']} (train {summary['train_rows']}, "
        f"validation {summary['val_rows']}), dropped 0")
    assert state.registered["model_id"] == expected[0] == state.selected
    version = browser.find_element(By.ID, "champion-version").get_attribute("href")
    assert version == "http://127.0.0.1:5000/#/models/uidemo/versions/1"
    exp_id = _experiment_id(finished_study["tracking"])
    child_links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "a.child-run")]
    assert sorted(child_links) == sorted(f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs/{rec.mlflow_run}"
                                         for rec in state.models.values())
    assert browser.find_element(By.ID, "parent-run").get_attribute("href").endswith(f"/runs/{state.mlflow_parent}")
    table = browser.find_element(By.ID, "leaderboard").text
    assert table.count(f"note={XSS_PARAM}") == 4  # the parameter value shown as text, in every row
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")  # ... and not as an element
    no_alert(browser)
    shoot(browser, tmp_path, "ui-leaderboard")

    # learning curves: one line per config in each chart, the best highlighted
    browser.get(run_url + "/curves")
    for key in ("val_accuracy", "train_loss", "val_loss"):
        lines = browser.find_elements(By.CSS_SELECTOR, f'svg[data-key="{key}"] g.curve')
        assert sorted(g.get_attribute("data-model") for g in lines) == sorted(state.models), key
        assert all(g.get_attribute("data-points") == "3" for g in lines)
        assert [g.get_attribute("data-model") for g in lines if "best" in g.get_attribute("class")] == [expected[0]]
    no_alert(browser)
    shoot(browser, tmp_path, "ui-curves")

    # Gantt: a bar per hop record of the run's hop log, evaluation drawn distinctly, efficiency printed
    browser.get(run_url + "/gantt")
    hops = [json.loads(x) for x in (finished_study["store"] / "uidemo" / "runs" / run_id / "hoplog.jsonl")
            .read_text().splitlines() if x.strip()]
    bars = browser.find_elements(By.CSS_SELECTOR, "#gantt g.hop")
    assert len(bars) == len(hops) == sum(1 for r in hops if r.get("status", "ok") == "ok") > 0
    evals = [r for r in hops if r["kind"] == "eval" or r.get("eval_s")]
    drawn_evals = (browser.find_elements(By.CSS_SELECTOR, "#gantt g.hop.eval")
                   + browser.find_elements(By.CSS_SELECTOR, "#gantt rect.eval-part"))
    assert len(drawn_evals) == len(evals) > 0
    busy = browser.find_element(By.ID, "busy-fraction").text
    assert busy.endswith("%") and 0 < float(busy[:-1]) <= 100
    assert browser.find_element(By.ID, "hop-overhead").text
    no_alert(browser)
    browser.find_element(By.LINK_TEXT, "each epoch the same width").click()  # short epochs readable too
    wait_for(browser, lambda d: d.current_url.endswith("?scale=epoch"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#gantt g.hop")) == len(hops)
    shoot(browser, tmp_path, "ui-gantt")


def test_live_refresh_shows_a_new_epoch(api_server, finished_study, browser, tmp_path):
    """A run that is training (a copy of the finished one cut back to epoch 2): its open curves page shows
    epoch 3 once the store has it, without a reload."""
    from selenium.webdriver.common.by import By

    from cerebro_ops.core.run_state import ModelStatus, RunRepository

    store = finished_study["store"].as_uri()
    done = RunRepository(store, "uidemo", finished_study["run_id"]).load()
    live = RunRepository(store, "uidemo", "ui-live-run")
    state = RunRepository(store, "uidemo", finished_study["run_id"]).load()
    state.run_id, state.created = "ui-live-run", "9999-01-01T00:00:00"
    state.epochs_done, state.selected, state.registered = 2, None, None
    for rec in state.models.values():
        rec.status, rec.history = ModelStatus.RUNNING, rec.history[:2]
    live.save(state)

    login(browser, api_server["base"], "viewer", "/cerebro/studies/uidemo/runs/ui-live-run/curves")
    assert "refreshing while the run trains" in browser.find_element(By.ID, "live").text
    first = browser.find_elements(By.CSS_SELECTOR, 'svg[data-key="val_accuracy"] g.curve')
    assert {g.get_attribute("data-points") for g in first} == {"2"}
    marker = browser.execute_script("document.querySelector('main').setAttribute('data-old', '1'); return 1")
    assert marker == 1

    for m, rec in state.models.items():  # what the epoch-3 step writes
        rec.history.append(done.models[m].history[2])
    state.epochs_done = 3
    live.save(state)
    wait_for(browser, lambda d: {g.get_attribute("data-points") for g in d.find_elements(
        By.CSS_SELECTOR, 'svg[data-key="val_accuracy"] g.curve')} == {"3"})
    assert browser.execute_script("return document.querySelector('main').getAttribute('data-old')") is None
    assert "running (epoch 3 done)" in _text(browser, run_url=f"{api_server['base']}/cerebro/studies/uidemo/runs/ui-live-run")
    live.delete()


def _text(driver, run_url: str) -> str:
    from selenium.webdriver.common.by import By

    driver.get(run_url)
    return driver.find_element(By.ID, "leaderboard").text


def test_access_control_in_the_browser(api_server, finished_study, browser):
    from selenium.webdriver.common.by import By

    base = api_server["base"]
    # anonymous: HTML pages go to the login page, the JSON API answers 401
    browser.get(f"{base}/cerebro/studies/uidemo")
    wait_for(browser, lambda d: "/auth/login" in d.current_url, 60)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/cerebro/api/studies/uidemo/runs/{finished_study['run_id']}/version")
    assert err.value.code == 401
    # a user without a role may log in to Airflow but not read the study's DAG
    login(browser, base, "nobody", "/cerebro/studies/uidemo")
    assert "403" in browser.find_element(By.TAG_NAME, "h1").text
    assert "no read access to DAG cerebro_uidemo" in browser.find_element(By.ID, "error").text
    assert finished_study["run_id"] not in browser.page_source


def _experiment_id(tracking_uri: str) -> str:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name("cerebro-uidemo").experiment_id


def test_screenshots_the_docs_show_exist_and_are_small():
    import re

    shown = set()
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        shown |= set(re.findall(r"\(((?:docs/)?img/ui-[\w-]+\.png)\)", doc.read_text()))
    assert {Path(s).name for s in shown} >= {"ui-runs.png", "ui-leaderboard.png", "ui-curves.png", "ui-gantt.png"}
    for name in {Path(s).name for s in shown}:
        png = DOCS_IMG / name
        assert png.is_file(), f"{png} is shown in the docs but missing"
        assert 5_000 < png.stat().st_size < MAX_PNG, (png, png.stat().st_size)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
