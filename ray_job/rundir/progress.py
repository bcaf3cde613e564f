"""One progress line (rows done, docs/s, ETA), from the run's shard tally (never a listing);
the total is the read stage's estimate (`read.estimate`)."""
from __future__ import annotations

import sys
import time

from .polling import Poller


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
