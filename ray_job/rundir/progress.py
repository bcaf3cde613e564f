"""One progress line (rows done, docs/s, ETA), from the run's shard tally (never a listing)."""
from __future__ import annotations

import sys
import time

from ..read.inputs import ReadUnit
from .polling import Poller
from ..storage.remote_files import open_stream

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


def format_line(done: int, total: int | None, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        total = max(total, done)          # the total is an estimate for JSONL
        eta = (total - done) / rate if rate > 0 else None
        eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta is not None else "--:--:--"
        return (f"embedded {done:,}/~{total:,} rows ({100 * done / total:.0f}%) | "
                f"{rate:,.1f} docs/s | ETA {eta_s}")
    return f"embedded {done:,} rows | {rate:,.1f} docs/s"


class Progress(Poller):
    """Context manager: redraws the progress line until the block ends."""

    def __init__(self, tally, total: int | None, start_rows: int = 0, stream=None,
                 interval: float = 1.0):
        self.tally = tally                # rows(): rows written by this run so far
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if self.tty else max(interval, 10.0)
        self.start_rows = start_rows
        self.started = time.monotonic()

    def tick(self, final: bool = False) -> None:
        done = self.tally.rows()
        total = None if self.total is None else max(0, self.total - self.start_rows)
        line = format_line(done, total, time.monotonic() - self.started)
        if self.tty:
            self.stream.write("\r" + line.ljust(100) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
