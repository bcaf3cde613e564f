"""k-NN label agreement at K: for each labelled row, the share of its K nearest labelled rows
(cosine, in embedding space) that carry its label. Unlabelled rows take no part (they are
neither queries nor neighbours).

Exact: the rows' normalised vectors in a faiss IndexFlatIP. The caller bounds the rows
(`AGREEMENT_POINTS`, evenly spaced over the run): memory is their vectors (50,000 x 1024
float32 = 200 MB) and one block of search results, time is quadratic in them only.

By chance (every row's neighbours drawn at random from the labelled rows) the mean
agreement is the sum over labels of their share squared: `chance`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .layout2d import read_sample

K = 10
AGREEMENT_POINTS = 50_000
QUERY_BLOCK = 4096


@dataclass
class Agreement:
    share: np.ndarray            # float32 per row asked for; NaN where it has no label
    mean: float                  # over the labelled rows
    chance: float                # the mean expected with neighbours drawn at random
    labelled: int


def chance_agreement(codes: np.ndarray) -> float:
    """Sum over labels of their share of the labelled rows, squared."""
    counts = np.bincount(codes[codes >= 0])
    shares = counts / max(1, counts.sum())
    return float((shares ** 2).sum())


def nearest_others(vectors: np.ndarray, k: int) -> np.ndarray:
    """Positions of each vector's k nearest other vectors (itself left out), exact."""
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    found = np.empty((len(vectors), k), dtype=np.int64)
    for start in range(0, len(vectors), QUERY_BLOCK):
        _, block = index.search(vectors[start:start + QUERY_BLOCK], k + 1)
        own = np.arange(start, start + len(block))[:, None]
        keep = block != own
        keep[keep.all(axis=1), -1] = False      # itself not among them (a tie): drop the last
        found[start:start + len(block)] = block[keep].reshape(len(block), k)
    return found


def label_agreement(h5: Path, rows: np.ndarray, codes: np.ndarray, k: int = K) -> Agreement:
    """The agreement of the sorted rows `rows` of `h5`, `codes` their labels (< 0: none)."""
    share = np.full(len(rows), np.nan, dtype=np.float32)
    labelled = np.flatnonzero(codes >= 0)
    k = min(k, len(labelled) - 1)
    if k < 1:
        return Agreement(share, float("nan"), float("nan"), len(labelled))
    vectors = np.ascontiguousarray(read_sample(h5, rows[labelled]), dtype=np.float32)
    own = codes[labelled]
    neighbours = nearest_others(vectors, k)
    share[labelled] = (own[neighbours] == own[:, None]).mean(axis=1)
    return Agreement(share, float(share[labelled].mean()), chance_agreement(own),
                     len(labelled))
