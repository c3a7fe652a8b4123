"""Page load time of the UI plugin on a large run: a generated store (default 50 configs x 20 epochs, 2 workers,
some pruned, one failed), every page requested through the plugin's FastAPI app with a real JWT of Airflow's
simple auth manager. Prints JSON: per page the median / max seconds of `--repeat` requests and the page size.

    python -m benchmarks.ui_load [--configs 50] [--epochs 20] [--workers 2] [--repeat 5]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=50)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cerebro-ui-load-"))
    os.environ.setdefault("AIRFLOW_HOME", str(tmp / "airflow"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    sys.path.insert(0, str(REPO))
    from tests.airflow.ui_store import write_run, write_spec

    t0 = time.perf_counter()
    write_spec(tmp / "specs", "big", tmp / "store", configs=args.configs, epochs=args.epochs, workers=args.workers)
    pruned = {i: 1 + i % max(args.epochs - 1, 1) for i in range(args.configs // 2, args.configs - 1)}
    write_run(tmp / "store", "big", "r1", configs=args.configs, epochs=args.epochs, workers=args.workers,
              pruned=pruned, failed=(args.configs - 1,))
    write_run(tmp / "store", "big", "r2", configs=args.configs, epochs=args.epochs, workers=args.workers,
              epochs_done=args.epochs // 2, created="2024-05-02T10:00:00", eval_in_train=False)
    fixture_s = time.perf_counter() - t0
    os.environ["CEREBRO_SPECS_DIR"] = str(tmp / "specs")

    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.utils import db
    from fastapi.testclient import TestClient

    db.resetdb()
    am = create_auth_manager()
    am.init()
    spec = importlib.util.spec_from_file_location("cerebro_plugin", REPO / "plugins" / "cerebro_plugin.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    client = TestClient(plugin.create_app())
    client.cookies.set("_token", am.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer")))

    pages = {"index": "/", "runs": "/studies/big", "leaderboard (finished)": "/studies/big/runs/r1",
             "curves (finished)": "/studies/big/runs/r1/curves", "gantt (finished)": "/studies/big/runs/r1/gantt",
             "leaderboard (training)": "/studies/big/runs/r2", "gantt (training)": "/studies/big/runs/r2/gantt",
             "live poll": "/api/studies/big/runs/r2/version"}
    results = {}
    for name, path in pages.items():
        client.get(path)  # warm: imports, template compilation
        times, size = [], 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            r = client.get(path)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, (path, r.status_code, r.text[:300])
            size = len(r.content)
        results[name] = {"median_s": round(statistics.median(times), 4), "max_s": round(max(times), 4),
                         "bytes": size}
    out = {"configs": args.configs, "epochs": args.epochs, "workers": args.workers, "repeat": args.repeat,
           "hop_records": args.configs * args.epochs * args.workers, "fixture_s": round(fixture_s, 2),
           "pages": results}
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
