"""Every row of embeddings.h5 laid out in 2-D, in bounded memory.

1. A sample of at most `sample` rows, evenly spaced over the file (read in one pass).
2. UMAP (umap-learn, cosine, 15 neighbours, a fixed seed) fitted on the sample, with the
   sample's nearest neighbours found by faiss and handed to UMAP as `precomputed_knn`.
3. Every other row placed where UMAP's own `transform` starts a new point: at the mean of
   its nearest sampled neighbours' positions, weighted by UMAP's membership strengths
   exp(-(d - d_nearest) / sigma). A chunk of CHUNK_ROWS rows at a time: memory is the sample,
   its index, one chunk, and 8 bytes of coordinates per row.

UMAP's `transform` goes on to refine each new point with optimisation epochs over a
neighbour search of its own (pynndescent), costing far more per row; the map's shape is the
sample's either way. (A first try on this machine, 5,000 random 384-d rows under heavy load,
took 34 s in `transform`: not a clean measurement, but no sign it would place 2.7M rows in
minutes.)
"""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..extras import require
from ..finalize.vectors import unit

CHUNK_ROWS = 65536
NEIGHBOURS = 15
PLACE_NEIGHBOURS = 10
FLAT_UP_TO = 20_000          # sample rows searched exactly; above: an inverted file
SEED = 0


@dataclass
class Layout:
    coords: np.ndarray           # (N, 2) float32, row order of embeddings.h5
    sample_rows: np.ndarray      # the rows UMAP was fitted on (sorted)


def sample_rows(rows: int, wanted: int) -> np.ndarray:
    """At most `wanted` row numbers, evenly spaced, sorted."""
    if wanted >= rows:
        return np.arange(rows, dtype=np.int64)
    return np.unique(np.linspace(0, rows - 1, wanted).astype(np.int64))


def h5_chunks(h5_path: Path) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, normalised float32 vectors) of each chunk."""
    with h5py.File(h5_path, "r") as h5:
        dset = h5["embeddings"]
        for start in range(0, dset.shape[0], CHUNK_ROWS):
            yield start, unit(dset[start:start + CHUNK_ROWS])


def read_sample(h5_path: Path, rows: np.ndarray) -> np.ndarray:
    parts = []
    for start, chunk in h5_chunks(h5_path):
        inside = rows[(rows >= start) & (rows < start + len(chunk))]
        parts.append(chunk[inside - start])
    return np.concatenate(parts)


def neighbour_index(vectors: np.ndarray):
    """A faiss inner-product index over the (normalised) sample."""
    import faiss

    dim = vectors.shape[1]
    if len(vectors) <= FLAT_UP_TO:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(4 * np.sqrt(len(vectors)))
        index = faiss.index_factory(dim, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.train(vectors)
        index.nprobe = 16
    index.add(vectors)
    return index


def neighbours(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances and sample rows of the k nearest sampled rows; a missing neighbour
    (-1, fewer found) repeats the nearest."""
    similarity, found = index.search(queries, k)
    missing = found < 0
    found[missing] = np.broadcast_to(found[:, :1], found.shape)[missing]
    similarity[missing] = np.broadcast_to(similarity[:, :1], similarity.shape)[missing]
    return np.maximum(0.0, 1.0 - similarity).astype(np.float32), found


def fit_umap(sample: np.ndarray, index) -> np.ndarray:
    """The sample's 2-D positions (float32), UMAP fitted on faiss's neighbour lists."""
    umap = require("umap", "map")
    k = min(NEIGHBOURS, len(sample) - 1)
    distances, found = neighbours(index, sample, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # n_jobs=1 for a seeded fit; no search index
        model = umap.UMAP(n_neighbors=k, metric="cosine", min_dist=0.1, random_state=SEED,
                          n_jobs=1, precomputed_knn=(found, distances, None))
        return model.fit_transform(sample).astype(np.float32)


def place(index, sample_coords: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Positions of new rows: their nearest sampled rows' positions, weighted by UMAP's
    membership strengths."""
    k = min(PLACE_NEIGHBOURS, len(sample_coords))
    distances, found = neighbours(index, queries, k)
    rho = distances[:, :1]
    sigma = np.maximum((distances - rho).mean(axis=1, keepdims=True), 1e-6)
    weights = np.exp(-(distances - rho) / sigma)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", weights, sample_coords[found]).astype(np.float32)


def lay_out(h5_path: Path, sample: int) -> Layout:
    with h5py.File(h5_path, "r") as h5:
        rows = h5["embeddings"].shape[0]
    picked = sample_rows(rows, sample)
    vectors = read_sample(h5_path, picked)
    index = neighbour_index(vectors)
    fitted = fit_umap(vectors, index)
    coords = np.empty((rows, 2), dtype=np.float32)
    coords[picked] = fitted
    if len(picked) < rows:
        is_sample = np.zeros(rows, bool)
        is_sample[picked] = True
        for start, chunk in h5_chunks(h5_path):
            todo = np.flatnonzero(~is_sample[start:start + len(chunk)])
            if len(todo):
                coords[start + todo] = place(index, fitted, chunk[todo])
    return Layout(coords, picked)
