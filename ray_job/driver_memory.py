"""The driver's own resident memory through the encode phase, sampled every few seconds.

Goes into report.json (`pipeline.driver_rss_mib`) so that a run at scale shows whether the
driver stays flat: the first sample, the last, and the largest. Linux only (/proc); elsewhere
the block is empty.
"""
from __future__ import annotations

import os

from .rundir.polling import Poller

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_mib(statm: str = "/proc/self/statm") -> float | None:
    """This process's resident set now (not its peak), in MiB; None without /proc."""
    try:
        with open(statm) as fh:
            pages = int(fh.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * PAGE_BYTES / 2**20, 1)


class DriverMemory(Poller):
    """Context manager: samples the driver's RSS every `interval` seconds while it is open."""

    def __init__(self, interval: float = 5.0, read=current_rss_mib):
        self.interval = interval
        self._read = read
        self.samples: list[float] = []

    def tick(self, final: bool = False) -> None:
        rss = self._read()
        if rss is not None:
            self.samples.append(rss)

    def summary(self) -> dict:
        if not self.samples:
            return {}
        return {"first": self.samples[0], "last": self.samples[-1], "max": max(self.samples),
                "samples": len(self.samples)}
