"""Row keys: stable int64s that do not depend on how Ray splits blocks.

key = file_index << 40 | position, where position is the byte offset of the line (JSONL) or the
row number (Parquet). Keys order the output and drive resume.
"""
from __future__ import annotations

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
