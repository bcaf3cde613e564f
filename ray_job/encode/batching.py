"""Length sorting, token-budget micro-batches and padding (pure functions, numpy only)."""
from __future__ import annotations

import numpy as np


def length_order(lengths: np.ndarray) -> np.ndarray:
    """Row indices, longest first; ties keep input order (stable)."""
    return np.argsort(-np.asarray(lengths), kind="stable")


def token_budget_batches(sorted_lengths: np.ndarray, max_tokens: int, max_rows: int,
                         min_efficiency: float = 0.97) -> list[slice]:
    """Cut rows sorted longest-first into slices whose padded size fits the token budget.

    The padded size of a slice is rows x its first (longest) length. A slice also ends before
    a row that would bring its padding efficiency (real / padded tokens) under
    `min_efficiency`. A single row longer than the budget still gets a batch of its own.
    """
    lengths = np.maximum(np.asarray(sorted_lengths, dtype=np.int64), 1)
    batches: list[slice] = []
    start, n = 0, len(lengths)
    while start < n:
        longest = int(lengths[start])
        cap = max(1, min(max_rows, max_tokens // longest, n - start))
        real = np.cumsum(lengths[start:start + cap])
        efficiency = real / (longest * np.arange(1, cap + 1))
        below = np.flatnonzero(efficiency < min_efficiency)
        rows = int(below[0]) if len(below) else cap
        rows = max(1, rows)
        batches.append(slice(start, start + rows))
        start += rows
    return batches


def pad_rows(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray, pad_id: int,
             out: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad the token lists `rows` (flat `values` + `offsets`) to their longest length.

    Returns (input_ids int64 [n, L], attention_mask int64 [n, L]); written into `out` when
    given (two int64 arrays of that shape, e.g. views of a reused pinned buffer). Vectorised:
    the mask comes from broadcasting lengths against the columns and the ids from one gather.
    """
    rows = np.asarray(rows, dtype=np.int64)
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    width = int(lengths.max()) if len(rows) else 0
    ids, mask = out if out is not None else (np.empty((len(rows), width), dtype=np.int64),
                                             np.empty((len(rows), width), dtype=np.int64))
    if ids.shape != (len(rows), width) or mask.shape != ids.shape:
        raise ValueError(f"pad_rows: out has shape {ids.shape} / {mask.shape}, "
                         f"needs {(len(rows), width)}")
    columns = np.arange(width)
    keep = columns < lengths[:, None]
    source = starts[:, None] + columns        # past a row's end: clipped, then padded over
    np.copyto(ids, np.take(values, source, mode="clip") if len(values) else 0)
    np.copyto(ids, pad_id, where=~keep)
    np.copyto(mask, keep)
    return ids, mask


def padding_efficiency(real_tokens: int, computed_tokens: int) -> float:
    return float(real_tokens) / computed_tokens if computed_tokens else 1.0
