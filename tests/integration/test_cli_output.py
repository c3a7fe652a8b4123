"""What `cerebro-ops run` prints: by default our hop lines and plain progress lines only; --verbose brings
back the libraries' logs. A 2-config x 1-epoch study on 400 dummy rows, run as a subprocess each way."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from .conftest import PY, REPO, write_yaml

pytestmark = [pytest.mark.slow, pytest.mark.spark]

SPARK_LOG = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d (WARN|INFO) ", re.M)
KERAS_BAR = re.compile(r"\d+/\d+ ━+|ms/step|s/step")
OTHER_INFO = re.compile(r" INFO (?!cerebro_ops)[\w.]+: ")


@pytest.fixture(scope="module")
def spec_path(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_output")
    data = _cli("make-data", "dummy", "--out", tmp / "data", "--rows", "400")
    assert data.returncode == 0, data.stderr
    raw = {"name": "quiet", "seed": 0,
           "data": {"source": data.stdout.strip(), "label": "label", "task": "binary",
                    "numeric": ["x1", "x2", "x3", "x4"], "categorical": ["color"]},
           "model": {"builder": "cerebro_ops.builders:mlp"},
           "search": {"method": "grid", "space": {"learning_rate": [0.001, 0.01], "batch_size": [32]}},
           "train": {"epochs": 1, "workers": 2, "metric": "val_accuracy", "direction": "max"},
           "runtime": {"store": (tmp / "store").as_uri(), "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}"}}
    return write_yaml(tmp / "quiet.yaml", raw)


def _cli(*args, timeout=900):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CEREBRO_VERBOSE",
                                                              "MLFLOW_LOGGING_LEVEL")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([PY, "-m", "cerebro_ops.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_run_is_quiet_by_default(spec_path):
    res = _cli("run", spec_path)
    assert res.returncode == 0, res.stderr[-3000:]
    err = res.stderr
    # ours: one line per hop (2 configs x 2 partitions), the last hop of each config with its val metrics
    assert len(re.findall(r"INFO cerebro_ops\.mop\.epoch: hop epoch=1 model=m00[01] partition=[01] ", err)) == 4, err
    # and one line per validation link (W - 1 per config), the chain's last with the config's val metrics
    assert len(re.findall(r"INFO cerebro_ops\.mop\.epoch: eval epoch=1 model=m00[01] partition=[01] ", err)) == 2, err
    assert len(re.findall(r"INFO cerebro_ops\.mop\.epoch: eval epoch=1 model=m00[01] .* val_loss=", err)) == 2, err
    assert "progress: 6/6 units (100%)" in err and "\r" not in err
    # theirs: none
    for noise in ("WindowExec", "E0000", "I0000", "W0000", "retracing", "Setting default log level",
                  "[Stage ", "Using Spark's default log4j profile"):
        assert noise not in err, f"{noise!r} in stderr:\n{err}"
    assert not SPARK_LOG.search(err), err
    assert not OTHER_INFO.search(err), err
    assert not KERAS_BAR.search(err) and not KERAS_BAR.search(res.stdout), res.stdout
    assert "m000" in res.stdout and "m001" in res.stdout  # the leaderboard


def test_verbose_brings_back_the_libraries_logs(spec_path):
    res = _cli("run", "--verbose", spec_path, "--seed", "1")
    assert res.returncode == 0, res.stderr[-3000:]
    err = res.stderr
    assert "hop epoch=1" in err
    assert OTHER_INFO.search(err), err  # INFO logs of the libraries (MLflow, py4j, ...)
    assert "I0000" in err or "E0000" in err or "W0000" in err, err  # TensorFlow's C++ logs are on
