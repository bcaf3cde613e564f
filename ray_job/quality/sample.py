"""Which rows the label and neighbour measures look at: a bounded sample of the run's rows,
chosen from the row count alone (two runs of the same corpus sample the same papers, which
`compare` relies on), in STRETCHES evenly spaced runs of consecutive rows, so that reading
their fields again from the inputs costs one short read per stretch, not one per row
(sample_fields.py).

Bounded: at most SAMPLE_ROWS rows and SAMPLE_BYTES of float32 vectors, at any row count.
"""
from __future__ import annotations

import numpy as np

SAMPLE_ROWS = 4096
SAMPLE_BYTES = 64 << 20
STRETCHES = 64


def sample_size(dim: int) -> int:
    """Rows in a sample of `dim`-dimensional vectors."""
    return int(max(STRETCHES, min(SAMPLE_ROWS, SAMPLE_BYTES // (4 * max(dim, 1)))))


def sample_rows(rows: int, size: int) -> np.ndarray:
    """The sampled h5 rows, sorted: every row when there are at most `size`, else STRETCHES
    runs of size // STRETCHES consecutive rows, evenly spaced over [0, rows)."""
    if rows <= size:
        return np.arange(rows, dtype=np.int64)
    length = size // STRETCHES
    starts = np.linspace(0, rows - length, STRETCHES).astype(np.int64)
    picked = (starts[:, None] + np.arange(length, dtype=np.int64)).ravel()
    return np.unique(picked)
