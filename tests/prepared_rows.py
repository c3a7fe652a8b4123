"""The prepare step's encoded rows as it wrote them (data/<split>/_partition=<w>), gathered back into one
table in the split's ``_order``: what the tests compare with the raw rows and with Encoding. The training path
reads each worker's partition instead."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def prepared_split(data_url: str, split: str, input_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the split in ``_order``, aligned with reader.load_raw_split."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cerebro_ops.data.reader import list_partitions
    from cerebro_ops.store import Store

    data = Store(data_url)
    parts = [pq.read_table(data.path(split, f"_partition={w}"), filesystem=data.arrow_fs(),
                           columns=["features", "label", "_order"]) for w in list_partitions(data_url, split)]
    df = pa.concat_tables(parts).to_pandas().sort_values("_order", kind="stable")
    assert df["_order"].tolist() == list(range(len(df)))  # every row once: the partitions cover the split
    x = np.stack([np.asarray(v, dtype=np.float32) for v in df["features"].to_numpy()])
    return x.reshape((len(df), *[int(s) for s in input_shape])), df["label"].to_numpy(dtype=np.float32)
