"""The shards a run has written so far, told by the shard sink as it writes each one, so the
progress line and `--upload-every` never list the store to find them (at 100M rows a listing
is ~200k objects). A small Ray actor on the driver's node; `LocalTally` is the same in-process."""
from __future__ import annotations

import time


class LocalTally:
    """Distinct shard names in the order they were written, and their rows."""

    def __init__(self):
        self._names: list[str] = []
        self._seen: set[str] = set()
        self._rows = 0
        self._timeline: list[tuple[float, int]] = []   # (wall clock, rows so far) per shard

    def add(self, name: str, rows: int) -> None:
        if name not in self._seen:        # a retried block rewrites the same shard
            self._seen.add(name)
            self._names.append(name)
            self._rows += rows
            self._timeline.append((time.time(), self._rows))

    def rows(self) -> int:
        return self._rows

    def names_since(self, count: int) -> list[str]:
        return self._names[count:]

    def timeline(self) -> list[tuple[float, int]]:
        """(time.time() when heard of, rows so far) for each distinct shard, in order."""
        return list(self._timeline)


def start_tally():
    """A ShardTally actor for this run (no CPU reserved: it only counts)."""
    import ray

    return ray.remote(num_cpus=0)(LocalTally).remote()


class TallyReader:
    """The driver's view of a tally actor, as plain calls."""

    def __init__(self, actor):
        self.actor = actor

    def rows(self) -> int:
        import ray

        return ray.get(self.actor.rows.remote())

    def names_since(self, count: int) -> list[str]:
        import ray

        return ray.get(self.actor.names_since.remote(count))

    def timeline(self) -> list[tuple[float, int]]:
        import ray

        return ray.get(self.actor.timeline.remote())
