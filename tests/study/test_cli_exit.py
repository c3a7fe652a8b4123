"""The `cerebro-ops` command exits without the interpreter's teardown: what it printed (piped, so block
buffered) and its exit code must still come out whole."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SPEC = """name: exits
data: {{source: {source}, label: y, task: binary, numeric: [a]}}
model: {{builder: "cerebro_ops.builders:mlp"}}
search: {{method: grid, space: {{learning_rate: [0.001, 0.01, 0.1]}}}}
"""


def cli(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cerebro_ops.cli", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_piped_output_and_exit_codes_survive_the_quick_exit(tmp_path):
    (tmp_path / "t.csv").write_text("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(30)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(source=tmp_path / "t.csv"))
    ok = cli("validate", spec, "--no-model-check")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: study 'exits'") and len(ok.stdout.splitlines()) >= 2, ok.stdout
    bad = cli("validate", spec, "--no-model-check", "--num-configs", "7")
    assert bad.returncode == 2
    assert "trigger param 'num_configs': 7 is out of range" in bad.stderr
    made = cli("make-data", "dummy", "--out", tmp_path / "d", "--rows", "50")
    assert made.returncode == 0 and Path(made.stdout.strip()).exists(), made.stderr


def test_the_quick_exit_still_runs_the_exit_handlers(tmp_path):
    """Exit handlers still run (the quiet log4j2 file's private directory is removed by one), and the code
    main() returned is the process's."""
    code = ("import atexit, shutil, tempfile\n"
            "from cerebro_ops import cli\n"
            "private = tempfile.mkdtemp(prefix='handler-')\n"
            "atexit.register(shutil.rmtree, private)\n"
            "print(private)\n"
            "cli.main = lambda: 3\n"
            "cli.entry()\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    private = Path(proc.stdout.strip())
    assert proc.returncode == 3, proc.stderr
    assert private.parent == tmp_path and not private.exists()
