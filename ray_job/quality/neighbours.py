"""k-NN label agreement on the sample: for each labelled sampled paper, the share of its k
nearest labelled sampled papers (cosine, exact, itself left out) that carry its label;
against the share a random other paper would give, sum over labels of
n_l (n_l - 1) / (n (n - 1)). Exact search: the sample is bounded (sample.py), so
this is at most SAMPLE_ROWS^2 dot products (faiss, flat)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K = 10
QUERY_BLOCK = 4096
MIN_LABELLED = 2 * K + 2       # fewer labelled papers than this: no agreement measured


@dataclass(frozen=True)
class Agreement:
    k: int
    papers: int                  # labelled sampled papers
    labels: int                  # distinct labels among them
    agreement: float             # mean share of neighbours with the paper's label
    random: float                # the share a random other paper gives
    per_row: np.ndarray          # (papers,) each paper's share

    @property
    def lift(self) -> float | None:
        return self.agreement / self.random if self.random > 0 else None

    def summary(self) -> dict:
        return {"k": self.k, "papers": self.papers, "labels": self.labels,
                "agreement": round(self.agreement, 4), "random": round(self.random, 4),
                "lift": None if self.lift is None else round(self.lift, 2)}


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def nearest(vectors: np.ndarray, k: int = K) -> np.ndarray:
    """(n, min(k, n - 1)) rows of each row's nearest other rows by cosine, nearest first
    (exact: a faiss flat inner-product search over the rows themselves, QUERY_BLOCK queries
    at a time)."""
    import faiss

    units = np.ascontiguousarray(unit_rows(vectors))
    k = min(k, len(units) - 1)
    index = faiss.IndexFlatIP(units.shape[1])
    index.add(units)
    found = np.empty((len(units), k), dtype=np.int64)
    for start in range(0, len(units), QUERY_BLOCK):
        _, block = index.search(units[start:start + QUERY_BLOCK], k + 1)
        keep = block != np.arange(start, start + len(block))[:, None]
        keep[keep.all(axis=1), -1] = False      # itself not among them (a tie): drop the last
        found[start:start + len(block)] = block[keep].reshape(len(block), k)
    return found


def random_share(codes: np.ndarray) -> float:
    """The share of a random other paper with a paper's label, for labels `codes` (>= 0):
    sum over labels of n_l (n_l - 1) / (n (n - 1))."""
    counts = np.bincount(codes).astype(np.float64)
    n = counts.sum()
    return float((counts * (counts - 1)).sum() / (n * (n - 1))) if n > 1 else 0.0


def label_agreement(vectors: np.ndarray, labels: list[str | None], k: int = K) -> Agreement | None:
    """None when fewer than MIN_LABELLED sampled papers have a label, or only one label."""
    have = np.array([label is not None for label in labels], bool)
    if have.sum() < MIN_LABELLED:
        return None
    names, codes = np.unique(np.array([label for label in labels if label is not None],
                                      dtype=object), return_inverse=True)
    if len(names) < 2:
        return None
    neighbours = nearest(vectors[have], k)
    shares = (codes[neighbours] == codes[:, None]).mean(axis=1)
    return Agreement(neighbours.shape[1], len(codes), len(names), float(shares.mean()),
                     random_share(codes), shares)
