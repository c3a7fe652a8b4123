"""The prepare step's encoded rows as it wrote them (data/prepared/<split>), before partitioning: what the
tests compare with the raw rows and with Encoding. The training path reads the partitions instead."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def prepared_split(data_url: str, split: str, input_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the split in ``_order``, aligned with reader.load_raw_split."""
    import pyarrow.parquet as pq

    from cerebro_ops.store import Store

    data = Store(data_url)
    df = pq.read_table(data.path("prepared", split), filesystem=data.arrow_fs()).to_pandas()
    df = df.sort_values("_order", kind="stable")
    x = np.stack([np.asarray(v, dtype=np.float32) for v in df["features"].to_numpy()])
    return x.reshape((len(df), *[int(s) for s in input_shape])), df["label"].to_numpy(dtype=np.float32)
