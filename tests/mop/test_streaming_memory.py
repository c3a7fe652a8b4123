"""A partition four times the worker's memory budget trains within the budget (slow: writes ~270 MB)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.data import tables

BUDGET_MB = 64
WIDTH = 128
# Over TensorFlow's warm baseline: the budget plus what the allocators keep around (Arrow's pool, glibc arenas).
MARGIN_MB = 96


@pytest.mark.slow
def test_a_partition_four_times_the_budget_trains_within_it(tmp_path):
    rows = 4 * BUDGET_MB * (1 << 20) // (4 * WIDTH + 16) + 10_000
    size = tables.write_generated(str(tmp_path / "data" / "train" / "_partition=0"), rows, WIDTH, seed=1)
    assert size >= 4 * BUDGET_MB * (1 << 20)
    vx, vy = tables.rows(5000, WIDTH, 2)
    tables.write_partition(str(tmp_path / "data" / "val" / "_partition=0"), vx, vy, np.arange(5000), files=1)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-m", "tests.mop.stream_memory_probe", str(tmp_path), str(WIDTH),
                          str(BUDGET_MB)], capture_output=True, text=True, timeout=300, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    grown_mb = (got["peak_kb"] - got["baseline_kb"]) / 1024
    print(f"baseline {got['baseline_kb'] / 1024:.0f} MB, peak {got['peak_kb'] / 1024:.0f} MB, grown {grown_mb:.0f} "
          f"MB for a {size / (1 << 20):.0f} MB partition, budget {BUDGET_MB} MB")
    assert grown_mb <= BUDGET_MB + MARGIN_MB
    train = [r for r in got["records"] if r["n"] == rows]
    assert [r["rows_from"] for r in train] == ["store", "local_disk"]
    assert all(r["data_mode"] == "streamed" and r["bytes_read"] >= size for r in train)
