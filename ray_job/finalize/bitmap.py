"""Row bitmaps: one bit per row (np.packbits order), so a set of rows costs 12.5 MB at 100M
rows whatever its size; read back a run of rows at a time."""
from __future__ import annotations

import numpy as np


def bits_of(bitmap: np.ndarray, start: int, n: int) -> np.ndarray:
    """bool per row start .. start + n - 1: whether its bit is set."""
    first = start // 8
    bits = np.unpackbits(bitmap[first:(start + n + 7) // 8])
    return bits[start - first * 8:start - first * 8 + n].astype(bool)
