"""The for-loop a user would write instead of a study: `python -m benchmarks.forloop SPEC.yaml --json OUT`.

pandas reads the spec's source, encodes it (numeric columns standardised, categoricals one-hot over their
most frequent values, array columns stacked), holds out the spec's validation fraction at random, then
Keras `fit`s every config of the grid one after another (default TensorFlow threads, as a user would run
it) and keeps the best final val loss. The driver times this process from its start to its exit, the same
way it times `cerebro-ops run`. Imports no other benchmarks module (it runs on its own).
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from types import SimpleNamespace

T_START = time.time()


def encode(df, data: dict):
    """(x float32, y) from the raw frame, the encoding a user would write by hand."""
    import numpy as np
    import pandas as pd

    parts = []
    if data.get("numeric"):
        num = df[data["numeric"]].astype("float64")
        parts.append(((num - num.mean()) / num.std(ddof=0).replace(0, 1)).fillna(0.0).to_numpy())
    for col in data.get("categorical", []):
        top = df[col].astype(str).value_counts().index[:int(data.get("max_categories", 50))]
        vals = df[col].astype(str).where(df[col].astype(str).isin(top), "other")
        parts.append(pd.get_dummies(vals, dtype="float64").to_numpy())
    shape = None
    for col, shp in (data.get("arrays") or {}).items():
        parts.append(np.stack(df[col].to_numpy()).astype("float64"))
        shape = tuple(shp)
    x = np.concatenate(parts, axis=1).astype("float32")
    if shape and len(parts) == 1:
        x = x.reshape((len(x),) + shape)
    y = df[data["label"]].to_numpy()
    return x, (y.astype("int64") if data["task"] == "multiclass" else y.astype("float32"))


def grid(space: dict) -> list[dict]:
    keys = list(space)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(space[k] for k in keys))]


def run(spec: dict) -> dict:
    import importlib

    import keras
    import numpy as np
    import pandas as pd

    data = spec["data"]
    t0 = time.time()
    x, y = encode(pd.read_parquet(data["source"]), data)
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    val = rng.random(len(x)) < float(data.get("validation_fraction", 0.2))
    info = SimpleNamespace(input_shape=x.shape[1:], task=data["task"], feature_spans=None, label_std=None,
                           num_classes=int(y.max()) + 1 if data["task"] == "multiclass" else 0)
    mod, fn = spec["model"]["builder"].split(":")
    builder = getattr(importlib.import_module(mod), fn)
    t1 = time.time()
    results = []
    for params in grid(spec["search"]["space"]):
        keras.utils.set_random_seed(int(spec.get("seed", 0)))
        model = builder(dict(params), info)
        h = model.fit(x[~val], y[~val], validation_data=(x[val], y[val]), epochs=int(spec["train"]["epochs"]),
                      batch_size=int(params.get("batch_size", 64)), verbose=0)
        results.append({"params": params, "val_loss": float(h.history["val_loss"][-1])})
    t2 = time.time()
    best = min(results, key=lambda r: r["val_loss"])
    return {"rows": len(x), "features": list(x.shape[1:]), "read_encode_s": t1 - t0, "fit_s": t2 - t1,
            "import_s": t0 - T_START, "results": results, "best": best, "process_s": time.time() - T_START}


def main(argv=None) -> int:
    import yaml

    ap = argparse.ArgumentParser(prog="python -m benchmarks.forloop")
    ap.add_argument("spec")
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    out = run(yaml.safe_load(Path(args.spec).read_text()))
    Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
