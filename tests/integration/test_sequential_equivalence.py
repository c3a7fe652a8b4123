"""MOP training vs plain sequential Keras on the same data, config and initial weights.

For each config of the shared study run (2 epochs, 2 partitions), the reference is the same
``cerebro_ops.builders.mlp`` model, initialised from the same seed as the MOP model
(``derive_seed(seed, model_id, "init")``), fitted with ``model.fit(shuffle=True)`` for 2 epochs on the
concatenated training partitions, and evaluated on the whole validation split (which is what MOP's
example-weighted val_loss over the validation shards amounts to).

Tolerance, and why: MOP visits the partitions one after the other (a shuffle *within* each partition,
in the model's visit order) while the reference shuffles globally, so the two see the data in different
orders and bitwise equality is not expected (the trainer's bitwise checkpoint equivalence for identical
data order is tested in tests/keras/test_trainer.py; replaying the hops in plain Keras with the hop seeds
reproduces MOP's val_loss to all printed digits). The reference runs with 3 shuffle seeds and MOP must be
within ``max(3 x spread, 0.05)`` of their mean, spread = max - min of the 3 values.

Why the floor is 0.05 and not 0.02: measured on this data (2 epochs, lr ~0.013-0.015), the val_loss after 2
epochs moves with the data order alone by a standard deviation of ~0.007-0.010 (5 global-shuffle seeds per
config: ranges 0.367-0.392 and 0.368-0.389), yet 3 seeds can land close together by chance (seeds 11/22/33
gave a spread of only 0.0034), and MOP's own order gave 0.396 for one config against a reference mean of
0.3755 (|diff| 0.0204, about 2-3 sigma). 0.05 is ~5 sigma of that order noise (~13% of a ~0.38 loss); the
separate check against the untrained model (~0.69) makes sure the comparison still has teeth.
"""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.spark]

SHUFFLE_SEEDS = (11, 22, 33)
FLOOR = 0.05  # ~5 sigma of the measured data-order noise (see the docstring)


def _sequential_val_loss(params, info, init_seed, shuffle_seed, x, y, x_val, y_val, epochs):
    """val loss after `epochs` of plain fit(shuffle=True); epochs=0 gives the untrained model's loss."""
    import keras

    from cerebro_ops.builders import mlp

    keras.utils.set_random_seed(init_seed)
    model = mlp(params, info)
    keras.utils.set_random_seed(shuffle_seed)
    if epochs == 0:
        return float(model.evaluate(x_val, y_val, batch_size=1024, verbose=0, return_dict=True)["loss"])
    model.fit(x, y, batch_size=int(params.get("batch_size", 64)), epochs=epochs, shuffle=True, verbose=0)
    return float(model.evaluate(x_val, y_val, batch_size=1024, verbose=0, return_dict=True)["loss"])


def test_mop_matches_sequential_keras(study_run):
    from cerebro_ops.core.seeds import derive_seed
    from cerebro_ops.data.reader import load_split
    from cerebro_ops.keras.trainer import data_info

    state = study_run.state
    info = data_info(state["meta"])
    data_url = study_run.store.url("data")
    x, y = load_split(data_url, "train", info.input_shape)
    x_val, y_val = load_split(data_url, "val", info.input_shape)
    x, y = np.array(x), np.array(y)  # writable copies for Keras
    epochs = state["epochs"]
    report = []
    for model_id, params in sorted(state["configs"].items()):
        mop = state["history"][model_id][-1]
        assert mop["epoch"] == epochs
        init_seed = derive_seed(state["seed"], model_id, "init")
        ref = [_sequential_val_loss(params, info, init_seed, s, x, y, x_val, y_val, epochs) for s in SHUFFLE_SEEDS]
        mean, spread = float(np.mean(ref)), float(np.ptp(ref))
        tol = max(3 * spread, FLOOR)
        report.append(f"{model_id}: mop={mop['val_loss']:.4f} seq={mean:.4f} (spread {spread:.4f}) tol={tol:.4f}")
        assert abs(mop["val_loss"] - mean) <= tol, "; ".join(report)
        untrained = _sequential_val_loss(params, info, init_seed, 0, x, y, x_val, y_val, 0)
        assert mop["val_loss"] < untrained - 0.1, f"{model_id}: MOP {mop['val_loss']:.4f} vs untrained {untrained:.4f}"
    print("\n" + "\n".join(report))
