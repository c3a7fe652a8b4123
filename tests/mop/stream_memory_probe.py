"""Run in a fresh process by test_streaming_memory.py: two epochs of one model on one streamed partition,
and the process's peak RSS before (TensorFlow, the model and its traced loops warm) and after."""
from __future__ import annotations

import json
import resource
import sys

MLP = "cerebro_ops.builders:mlp"
PARAMS = {"hidden_units": 16, "num_layers": 1, "learning_rate": 0.01, "batch_size": 1024}


def _peak_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(root: str, width: int, budget_mb: int) -> dict:
    import numpy as np

    from cerebro_ops.keras.trainer import DataInfo, HopTrainer
    from cerebro_ops.mop.epoch import EpochContext, EpochDriver, thread_launcher
    from cerebro_ops.store import Store

    store = Store(f"file://{root}/run")
    trainer = HopTrainer(DataInfo((width,), "binary", 2))
    ckpt = trainer.initial_checkpoint(MLP, PARAMS, 1)
    x = np.zeros((2048, width), np.float32)
    y = np.zeros(2048, np.float32)
    trainer.train(MLP, PARAMS, ckpt, x, y, seed=1)  # traces the loops: part of the baseline, not of the data
    trainer.evaluate_part(MLP, PARAMS, None, [(x, y)], None)
    baseline = _peak_kb()
    start = {"m0": {"ckpt": "ckpt/m0/init.npz", "sha256": store.write_blob("ckpt/m0/init.npz", ckpt)}}
    meta = {"input_shape": [width], "task": "binary", "num_classes": 2}
    records = []
    for epoch in (1, 2):
        ctx = EpochContext(store, epoch, {"m0": PARAMS}, start, MLP, 7, 1, f"file://{root}/data", meta,
                           hop_order="fixed", validation="partitioned", memory_mb=budget_mb,
                           local_dir=f"{root}/local")
        res = EpochDriver(ctx, thread_launcher(1)).run()
        start = {"m0": res.models["m0"].ckpt}
        records += res.records
    keep = ("epoch", "rows_from", "bytes_read", "data_mode", "rss_peak_kb", "n", "train_s", "status")
    return {"baseline_kb": baseline, "peak_kb": _peak_kb(), "records": [{k: r.get(k) for k in keep} for r in records]}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
