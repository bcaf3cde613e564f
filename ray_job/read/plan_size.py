"""Sane read plans: a floor under --block-bytes and a cap on the read units of a plan.

Every read unit costs a Ray task, a reads record and a line of plan.json (~180 bytes), so a
unit must hold more than a few bytes: at a few bytes a unit, the plan of even a small file
holds tens of thousands of units and the job spends its time scheduling them. The floor
(config_checks.MIN_BLOCK_BYTES_OPTION, a few records per unit) is refused below in one line;
above it, a block size that would still cut the plain JSONL inputs into more than
MAX_PLAN_UNITS units is raised until they fit (and said so). Compressed files, JSON arrays,
Parquet and DuckDB inputs are cut by their own rules (inputs.py), never finer than one unit
per 20,000 rows or per file.
"""
from __future__ import annotations

import sys

MAX_PLAN_UNITS = 65_536           # 64 MiB blocks (the automatic maximum) cover 4 TiB with these


def _plain_sizes(files) -> list[int]:
    return [f.size for f in files if f.format == "jsonl" and not f.compression]


def byte_range_units(files, block_bytes: int) -> int:
    """How many byte-range units the plain JSONL files make at this block size."""
    return sum(-(-size // block_bytes) for size in _plain_sizes(files))


def bounded_block_bytes(files, block_bytes: int) -> int:
    """`block_bytes`, or a larger one (a multiple of 1 KiB) that keeps the plan's byte-range
    units within MAX_PLAN_UNITS, with a note on stderr. (Each file is one unit at least: more
    plain files than that cannot be helped here.)"""
    units = byte_range_units(files, block_bytes)
    if units <= MAX_PLAN_UNITS:
        return block_bytes
    sizes = _plain_sizes(files)
    wider = max(block_bytes, -(-sum(sizes) // (MAX_PLAN_UNITS * 1024)) * 1024)
    while byte_range_units(files, wider) > MAX_PLAN_UNITS and wider < max(sizes):
        wider *= 2
    print(f"ray-embed: a block size of {block_bytes:,} bytes would cut the input into {units:,} "
          f"read units; using {wider:,} bytes ({byte_range_units(files, wider):,} units)",
          file=sys.stderr)
    return wider
