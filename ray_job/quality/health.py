"""Health measures over every row, in one pass and flat memory: the vectors' norms, their
mean pairwise cosine (exact over all pairs of rows, from the sum of the unit vectors:
mean over i != j of u_i . u_j = (|sum u|^2 - n) / (n (n - 1))), and the texts the max length
cut (a row whose token count reached the model's max length)."""
from __future__ import annotations

import numpy as np


class Health:
    def __init__(self, max_tokens: int | None):
        self.max_tokens = max_tokens
        self.rows = 0
        self.zero = 0
        self.norm_min, self.norm_max, self.norm_sum = np.inf, 0.0, 0.0
        self.unit_sum: np.ndarray | None = None
        self.units = 0
        self.tokens_known = 0
        self.cut = 0

    def add(self, vectors: np.ndarray, n_tokens: np.ndarray) -> None:
        vectors = np.asarray(vectors, np.float32)
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
        self.rows += len(norms)
        self.norm_min = min(self.norm_min, float(norms.min()))
        self.norm_max = max(self.norm_max, float(norms.max()))
        self.norm_sum += float(norms.sum(dtype=np.float64))
        live = norms > 0
        self.zero += int((~live).sum())
        inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=live)
        total = (inverse @ vectors).astype(np.float64)       # the chunk's unit vectors, summed
        self.unit_sum = total if self.unit_sum is None else self.unit_sum + total
        self.units += int(live.sum())
        known = n_tokens > 0                 # 0: a row reused from --previous, count unknown
        self.tokens_known += int(known.sum())
        if self.max_tokens:
            self.cut += int((n_tokens[known] >= self.max_tokens).sum())

    def mean_cosine(self) -> float | None:
        return pairwise_mean_cosine(self.unit_sum, self.units)

    def summary(self) -> dict:
        return {
            "norms": {"min": _round(self.norm_min), "mean": _round(self.norm_sum / self.rows)
                      if self.rows else None, "max": _round(self.norm_max),
                      "zero_vectors": self.zero},
            "mean_cosine": _round(self.mean_cosine()),
            "cut_by_max_length": {"max_tokens": self.max_tokens, "rows": self.cut,
                                  "of_rows": self.tokens_known,
                                  "share": _round(self.cut / self.tokens_known)
                                  if self.tokens_known else None},
        }


def pairwise_mean_cosine(unit_sum: np.ndarray | None, n: int) -> float | None:
    """The mean cosine over all ordered pairs of distinct rows of n unit vectors summing to
    `unit_sum`."""
    if unit_sum is None or n < 2:
        return None
    return float((unit_sum @ unit_sum - n) / (n * (n - 1)))


def _round(value, digits: int = 6):
    return None if value is None or not np.isfinite(value) else round(float(value), digits)
