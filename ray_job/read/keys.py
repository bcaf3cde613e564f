"""Row keys: stable int64s that do not depend on how Ray splits blocks.

key = file_index << 40 | position, where position is the byte offset of the line (JSONL) or the
row number (Parquet). Keys order the output and drive resume. A read unit covers the keys
[lo, hi) of `unit_key_bounds`.
"""
from __future__ import annotations

import numpy as np

POSITION_BITS = 40
MAX_FILES = 1 << (63 - POSITION_BITS)
MAX_POSITION = (1 << POSITION_BITS) - 1


def make_key(file_index: int, position: int) -> int:
    if not 0 <= file_index < MAX_FILES:
        raise ValueError(f"file index {file_index} out of range")
    if not 0 <= position <= MAX_POSITION:
        raise ValueError(f"position {position} out of range (files up to 1 TiB)")
    return (file_index << POSITION_BITS) | position


def split_key(key: int) -> tuple[int, int]:
    return key >> POSITION_BITS, key & MAX_POSITION


def unit_key_bounds(units: list) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi) key range of each unit (a unit without an end runs to the end of its file)."""
    lo = np.array([(u.file_index << POSITION_BITS) | u.start for u in units], dtype=np.int64)
    hi = np.array([(u.file_index << POSITION_BITS) | u.end if u.end is not None
                   else (u.file_index + 1) << POSITION_BITS for u in units], dtype=np.int64)
    return lo, hi
