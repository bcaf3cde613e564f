"""The approximate nearest-neighbour index (faiss), built from embeddings.h5 one chunk at a time.

Vectors are L2-normalised, so inner product = cosine. Small runs get an exact flat index; from
FLAT_BELOW rows on, an inverted-file index with 8-bit scalar-quantised vectors (1 byte per
dimension: 2.1 GB for 2.7M x 768) and an HNSW graph over its centroids, so assigning each row
to its list costs a graph walk instead of a scan of every centroid. Memory while building: the
index itself, one chunk, and a training sample of TRAIN_PER_LIST rows per list.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..finalize.vectors import unit

CHUNK_ROWS = 65536
FLAT_BELOW = 50_000
TRAIN_PER_LIST = 40
TRAIN_BLOCKS = 256          # the training sample: this many evenly spaced contiguous runs
DEFAULT_NPROBE = 32


@dataclass(frozen=True)
class AnnSpec:
    """How an index is made and searched (recorded in index.json)."""
    factory: str             # faiss index_factory string
    nlist: int               # 0 = flat (exact)
    nprobe: int


def choose_spec(rows: int, nprobe: int = DEFAULT_NPROBE) -> AnnSpec:
    if rows < FLAT_BELOW:
        return AnnSpec("Flat", 0, 0)
    nlist = 2 ** round(math.log2(2 * math.sqrt(rows)))
    return AnnSpec(f"IVF{nlist}_HNSW32,SQ8", nlist, nprobe)


def h5_chunks(h5_path: Path, rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """embeddings.h5's vectors, normalised, `rows` at a time."""
    with h5py.File(h5_path, "r") as h5:
        dset = h5["embeddings"]
        for start in range(0, dset.shape[0], rows):
            yield unit(dset[start:start + rows])


def training_sample(h5_path: Path, wanted: int) -> np.ndarray:
    """About `wanted` rows from TRAIN_BLOCKS evenly spaced places (contiguous reads)."""
    with h5py.File(h5_path, "r") as h5:
        dset = h5["embeddings"]
        n = dset.shape[0]
        if wanted >= n:
            return unit(dset[:])
        per_block = max(1, wanted // TRAIN_BLOCKS)
        starts = np.linspace(0, n - per_block, min(TRAIN_BLOCKS, wanted), dtype=np.int64)
        return unit(np.concatenate([dset[s:s + per_block] for s in np.unique(starts)]))


def build(h5_path: Path, spec: AnnSpec):
    """A faiss index holding every row of `h5_path`, ids = row numbers."""
    import faiss

    with h5py.File(h5_path, "r") as h5:
        dim = h5["embeddings"].shape[1]
    index = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(training_sample(h5_path, TRAIN_PER_LIST * spec.nlist))
    for chunk in h5_chunks(h5_path):
        index.add(chunk)
    return index


def save(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def load(path: Path, spec: AnnSpec):
    import faiss

    index = faiss.read_index(str(path))
    if spec.nlist:
        faiss.ParameterSpace().set_index_parameters(
            index, f"nprobe={spec.nprobe},quantizer_efSearch={max(64, 2 * spec.nprobe)}")
    return index


def candidates(index, queries: np.ndarray, n: int) -> np.ndarray:
    """Row numbers [q, n] of the approximate nearest rows (-1 where fewer exist)."""
    _, rows = index.search(unit(queries), min(n, index.ntotal))
    return rows
