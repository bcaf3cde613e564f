"""Indexes over the compact vectors (`ray-embed index --vectors int8|binary
[--truncate-dim D]`): the codes of the int8 / binary exports (finalize/quantize.py, computed
again from embeddings.h5, so they are the export's bytes), searched exactly:

* int8: a faiss scalar-quantiser index whose per-dimension ranges are the export's
  calibration and whose codes are the export's codes (+128): faiss scores a float query
  against min + (c + 128.5) * step, the value each code stands for. 1 byte per dimension.
* binary: a faiss binary flat index over the packed bits (Hamming distance against the
  query's signs). 1 bit per dimension: 48 bytes a row at 384 dims.

Both give candidates only: `search` takes RESCORE[vectors] x k of them and scores them
exactly (cosine of the float32 query with embeddings.h5's float32 rows), as it does for
the float32 index. Queries are truncated like the rows; their scale does not change the
ranking, so they need no normalising again.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..finalize.quantize import int8_ranges, int8_steps, quantize, vector_chunks

RESCORE = {"int8": 4, "binary": 10}        # candidates per hit scored exactly: recall@10
                                           # 1.0 (int8) and 0.99 (binary) on 200k x 384
                                           # clustered vectors (benchmarks/README.md)


def build(h5_path: Path, vectors: str, truncate_dim: int | None):
    """A faiss index of every row's `vectors` codes (ids = row numbers) and its facts."""
    if vectors == "int8":
        return _build_int8(h5_path, truncate_dim)
    return _build_binary(h5_path, truncate_dim)


def _build_int8(h5_path: Path, truncate_dim: int | None):
    import faiss

    ranges = int8_ranges(h5_path, truncate_dim)
    dim = ranges.shape[1]
    index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit,
                                       faiss.METRIC_INNER_PRODUCT)
    trained = np.concatenate([ranges[0], int8_steps(ranges) * 255]).astype(np.float32)
    faiss.copy_array_to_vector(trained, index.sq.trained)
    index.is_trained = True
    for chunk in vector_chunks(h5_path, truncate_dim):
        codes = quantize(chunk, "int8", ranges)
        index.add_sa_codes((codes.astype(np.int16) + 128).astype(np.uint8))
    return index, {"factory": "SQ8 (the int8 export's ranges and codes)", "dim_indexed": dim}


def _build_binary(h5_path: Path, truncate_dim: int | None):
    import faiss

    index = None
    for chunk in vector_chunks(h5_path, truncate_dim):
        codes = ubinary(chunk)
        if index is None:
            index = faiss.IndexBinaryFlat(8 * codes.shape[1])
        index.add(codes)
    return index, {"factory": "BinaryFlat (Hamming)", "dim_indexed": index.d}


def ubinary(chunk: np.ndarray) -> np.ndarray:
    """The binary export's codes as unsigned bytes (what faiss's binary indexes take)."""
    return (quantize(chunk, "binary").astype(np.int16) + 128).astype(np.uint8)


def candidates(index, info: dict, queries: np.ndarray, n: int) -> np.ndarray:
    """Row numbers [q, n] nearest to the float32 `queries` by the compact codes."""
    dim = info.get("truncate_dim") or queries.shape[1]
    q = np.ascontiguousarray(queries[:, :dim], dtype=np.float32)
    probe = ubinary(q) if info["vectors"] == "binary" else q
    _, rows = index.search(probe, min(n, index.ntotal))
    return rows


def save(index, vectors: str, path: Path) -> None:
    import faiss

    (faiss.write_index_binary if vectors == "binary" else faiss.write_index)(index, str(path))


def load(path: Path, vectors: str):
    import faiss

    return (faiss.read_index_binary if vectors == "binary" else faiss.read_index)(str(path))
