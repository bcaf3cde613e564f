"""How many rows a run's read units hold, for the progress line's total: exact for row ranges
(Parquet, JSON arrays), estimated for plain JSONL, unknown for DuckDB key ranges and for
compressed files without a row cap.

A JSONL estimate starts from a sample of the file's line sizes (`estimate_total_rows`) and is
then taken from what the run has read (`RowEstimate`): the rows per byte of the units whose
shards came back, over the bytes of all of them. One 30 MB record among short ones made the
sample's estimate 27 times the file's 21 rows; what has been read is not fooled for long.
"""
from __future__ import annotations

import threading

import numpy as np

from ..storage.remote_files import open_stream
from .inputs import ReadUnit
from .keys import unit_key_bounds

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


class RowEstimate:
    """The rows `units` hold (at most `limit`), as the progress line shows them: `total()` is
    (rows, exact). Each shard that comes back (`seen`: its first and last keys and its rows; a
    shard holds whole units) says which units have been read; JSONL's rows are then estimated
    as the rows per byte of the units read, and are exact once every unit has been. Row ranges
    are exact from the start; a compressed file's row cap and DuckDB's key ranges never are.
    Thread-safe: the driver adds, the progress thread reads."""

    def __init__(self, units: list[ReadUnit], limit: int | None = None):
        self.prior = estimate_total_rows(units, limit)      # None: no estimate to be had
        self.lo = unit_key_bounds(units)[0] if units else np.zeros(0, np.int64)
        self.by_bytes = np.array([_plain_jsonl(u) for u in units], dtype=bool)
        self.bytes = np.array([u.end - u.start if _plain_jsonl(u) else 0 for u in units],
                              dtype=np.float64)
        self.known = sum(u.end - u.start for u in units if u.format in ROW_RANGES)
        self.inexact = any(u.compression or u.format == "duckdb" for u in units)
        self.read = np.zeros(len(units), dtype=bool)
        self.rows_read = 0                  # rows of the shards of JSONL units
        self.limit = limit
        self._lock = threading.Lock()

    def seen(self, first_key: int, last_key: int, rows: int) -> None:
        first = int(np.searchsorted(self.lo, first_key, side="right")) - 1
        last = int(np.searchsorted(self.lo, last_key, side="right")) - 1
        with self._lock:
            span = slice(max(first, 0), last + 1)
            if first >= 0 and self.by_bytes[span].all() and not self.read[span].any():
                self.read[span] = True
                self.rows_read += rows

    def total(self) -> tuple[int | None, bool]:
        with self._lock:
            if self.prior is None or not self.by_bytes.any():
                return self.prior, self.prior is not None and not self.inexact
            if not self.read.any():
                return self.prior, False
            exact = bool(self.read[self.by_bytes].all()) and not self.inexact
            jsonl = self.rows_read if exact else round(
                self.rows_read * self.bytes.sum() / self.bytes[self.read].sum())
        rows = self.known + jsonl
        return (min(rows, self.limit), exact and rows <= self.limit) if self.limit else \
            (rows, exact)


ROW_RANGES = ("parquet", "json_array")


def _plain_jsonl(unit: ReadUnit) -> bool:
    return unit.format not in (*ROW_RANGES, "duckdb") and not unit.compression \
        and unit.end is not None
