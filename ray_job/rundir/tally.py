"""The shards a run has written so far, in the order the driver heard of them (the pipeline's
last stage names each shard it writes), so the progress line and `--upload-every` never list
the store to find them (at 100M rows a listing is ~200k objects). The driver adds to it from
the Ray Data output it reads; the progress and upload threads read it."""
from __future__ import annotations

import threading
import time


class ShardTally:
    """Distinct shard names in the order they were written, and their rows (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._seen: set[str] = set()
        self._rows = 0
        self._timeline: list[tuple[float, int]] = []   # (wall clock, rows so far) per shard

    def add(self, name: str, rows: int) -> None:
        with self._lock:
            if name in self._seen:        # a retried block rewrote the same shard
                return
            self._seen.add(name)
            self._names.append(name)
            self._rows += rows
            self._timeline.append((time.time(), self._rows))

    def rows(self) -> int:
        return self._rows

    def names_since(self, count: int) -> list[str]:
        with self._lock:
            return self._names[count:]

    def timeline(self) -> list[tuple[float, int]]:
        """(time.time() when heard of, rows so far) for each distinct shard, in order."""
        with self._lock:
            return list(self._timeline)
