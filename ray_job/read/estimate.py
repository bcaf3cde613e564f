"""How many rows a run's read units hold, for the progress line's total: exact for row ranges
(Parquet, JSON arrays), estimated from line sizes for plain JSONL, unknown for DuckDB key
ranges and for compressed files without a row cap."""
from __future__ import annotations

from ..storage.remote_files import open_stream
from .inputs import ReadUnit

SAMPLE_BYTES = 1 << 20


def estimate_total_rows(units: list[ReadUnit], limit: int | None = None) -> int | None:
    """Rows the units hold: exact for Parquet, estimated from line sizes for plain JSONL."""
    total = _estimate(units)
    return min(total, limit) if total and limit else (total or limit)


def _estimate(units: list[ReadUnit]) -> int | None:
    total = 0
    line_bytes: dict[str, float] = {}
    for u in units:
        if u.format in ("parquet", "json_array"):     # row ranges
            total += u.end - u.start
        elif u.format == "duckdb":
            return None                   # key ranges, not row counts
        elif u.compression:
            if u.max_rows is None:
                return None
            total += u.max_rows
        else:
            if u.path not in line_bytes:
                line_bytes[u.path] = _mean_line_bytes(u.path)
            total += round((u.end - u.start) / line_bytes[u.path])
    return total


def _mean_line_bytes(path: str) -> float:
    with open_stream(path, SAMPLE_BYTES) as fh:
        sample = fh.read(SAMPLE_BYTES)
    return max(1.0, len(sample) / max(1, sample.count(b"\n")))
