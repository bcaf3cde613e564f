"""One progress line (rows done, docs/s, ETA), from the run's shard tally (never a listing);
the total is the read stage's (`read.estimate.RowEstimate`), shown with "~" only while it is
an estimate."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable

from .polling import Poller

Total = Callable[[], "tuple[int | None, bool]"]      # -> (rows, exact)


def format_line(done: int, total: int | None, elapsed: float, exact: bool = False) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        total = max(total, done)          # an estimate falls behind what is done: catch up
        eta = (total - done) / rate if rate > 0 else None
        eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta is not None else "--:--:--"
        return (f"embedded {done:,}/{'' if exact else '~'}{total:,} rows "
                f"({100 * done / total:.0f}%) | {rate:,.1f} docs/s | ETA {eta_s}")
    return f"embedded {done:,} rows | {rate:,.1f} docs/s"


class Progress(Poller):
    """Context manager: redraws the progress line until the block ends. `total`: this run's
    rows, a number (an estimate) or a function giving (rows, exact)."""

    def __init__(self, tally, total: int | None | Total, start_rows: int = 0, stream=None,
                 interval: float = 1.0):
        self.tally = tally                # rows(): rows written by this run so far
        self.total = total if callable(total) else (lambda: (total, False))
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if self.tty else max(interval, 10.0)
        self.start_rows = start_rows
        self.started = time.monotonic()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.complete = exc_type is None          # the last line's total is then what was done
        super().__exit__(exc_type, exc, tb)

    def tick(self, final: bool = False) -> None:
        done = self.tally.rows()
        if final and getattr(self, "complete", False):
            total, exact = done + self.start_rows, True
        else:
            total, exact = self.total()
        total = None if total is None else max(0, total - self.start_rows)
        line = format_line(done, total, time.monotonic() - self.started, exact)
        if self.tty:
            self.stream.write("\r" + line.ljust(100) + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
