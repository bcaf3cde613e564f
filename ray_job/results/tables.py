"""Rows of embeddings.h5 as an Arrow table (`FinishedRun.to_arrow`)."""
from __future__ import annotations

import pyarrow as pa

from .columns import H5Column, Rows


def rows_table(ids: H5Column, urls: H5Column | None, vectors: H5Column,
               rows: Rows) -> pa.Table:
    """`id`, `url` (when the run has urls) and `embedding` of `rows`, in the order asked."""
    matrix = vectors[rows]
    columns = {"id": pa.array(ids[rows], pa.string())}
    if urls is not None:
        columns["url"] = pa.array(urls[rows], pa.string())
    flat = pa.array(matrix.reshape(-1), pa.float32())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    return pa.table(columns)
