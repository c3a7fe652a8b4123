"""Browser tests of the UI plugin: a real study run (CLI: Spark, Keras, MLflow), a real `airflow api-server`
with the simple auth manager on a free 127.0.0.1 port, and headless Chromium driven through Selenium."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .study_spec import write_spec

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
USERS = {"viewer": ("viewer", "viewer-pass-1"), "nobody": ("", "nobody-pass-2")}  # user: (role, password)
CHROME_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                "--disable-dev-shm-usage", "--window-size=1280,860"]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives headless Chromium against a real Airflow API server")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(PYTHONPATH=str(REPO), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=PY, TF_CPP_MIN_LOG_LEVEL="2")
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory):
    """A real 4-config x 3-epoch study run through the CLI: its specs folder, store and run id."""
    root = tmp_path_factory.mktemp("ui-study")
    subprocess.run([PY, "-m", "cerebro_ops.cli", "make-data", "dummy", "--out", str(root / "data")], cwd=root,
                   env=_env(), check=True, capture_output=True, timeout=300)
    spec = write_spec(root / "specs", root / "data" / "dummy.parquet", root / "store", root / "mlflow.db")
    run = subprocess.run([PY, "-m", "cerebro_ops.cli", "run", str(spec), "--run-id", "ui-run-1"], cwd=root,
                         env=_env(), capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return {"root": root, "specs": root / "specs", "store": root / "store", "run_id": "ui-run-1",
            "tracking": f"sqlite:///{root / 'mlflow.db'}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def api_server(finished_study, tmp_path_factory):
    """`airflow api-server` on 127.0.0.1 with this repository's plugins folder and the study's specs; users
    'viewer' (role viewer) and 'nobody' (no role: authenticated, no DAG access) with known passwords."""
    home = tmp_path_factory.mktemp("airflow-home")
    (home / "dags").mkdir()
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({u: p for u, (_, p) in USERS.items()}))
    port = _free_port()
    env = _env(
        AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(REPO / "plugins"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=",".join(f"{u}:{r}" for u, (r, _) in USERS.items()),
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
        AIRFLOW__API_AUTH__JWT_SECRET="browser-test-secret-" + "x" * 48,
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        CEREBRO_SPECS_DIR=str(finished_study["specs"]), CEREBRO_UI_POLL_SECONDS="1")
    subprocess.run([PY, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    log = open(home / "api-server.log", "w")
    proc = subprocess.Popen([PY, "-m", "airflow", "api-server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise RuntimeError(f"api-server did not start:\n{(home / 'api-server.log').read_text()[-4000:]}")
        time.sleep(1)
    yield {"base": base, "home": home, "proc": proc}
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and any worker it forked
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    log.close()


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not shutil.which("chromedriver") or not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in CHROME_FLAGS:
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()
