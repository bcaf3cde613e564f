"""Fencing: a driver writes to its run directory only while it holds the run's lease.

The fencing token is the owner id in the lease (`LeaseRecord.owner`, a random id: lease.py).
A fenced run directory (`RunDir.fence` set, `RunDir.held()`) reads lease.json before every
commit, that is every write, PUT, rename or removal of a file in it (`FencedStore`) and the
final rename of a result (`RunDir.results.writer`), and raises LeaseLost, writing nothing, when
lease.json no longer names its token: another driver took the run over (this one was paused
past its lease, or lost its heartbeat) or the lease is gone. The token is plain data: Ray
workers get it with the run's URL and check it at their own commits (shards, rejects, reads,
reuse lists), so a stale driver's tasks stop too. A check is one small read (a local file, or
one GET in an object store) per commit; commits are per shard, per read unit, per result file.

Why an id and not a counter: the check is "does the lease name me", an equality against the
one record of who holds the run, and a random id is never reused, so no driver mistakes
another's lease (or a lease taken, released and taken again) for its own. A counter matters
where the storage compares tokens itself; neither POSIX files nor S3 can.

The window that remains: the check and the commit are two operations (POSIX has no
conditional rename, and S3's conditional PUT conditions only the object written, not
lease.json), so a driver stopped exactly between them (microseconds locally, one PUT's
latency in a store) and resumed after a takeover lands that one commit, then fails its next
check. What keeps that harmless:
- shards: names come from their keys, so a late shard of the same block is the same file with
  the same rows, and a late shard of another block only repeats keys that finalize counts once
  (one row per key; the vectors of one paper under the same settings, as a resume requires);
  a shard of a run with other settings (a `--fresh` by the new driver) is told by the config
  hash it records and quarantined at finalize, its rows recomputed (shards.py, h5out.py);
- per-unit rejects, reads records and reuse lists of the same unit and settings are the same
  content (a --fresh run with other settings rewrites them as it reads each unit again);
- results (embeddings.h5, exports, index files): a reader trusts a run only once report.json
  is there, and report.json is written last under a fresh check; a result renamed in the
  window is checked again right after (`RunDir.results.writer`), so the stale driver's one line
  then names the file that may have replaced the new holder's and says to finalize again once
  that driver is done (under the same settings it holds the same rows anyway);
- the lease's own heartbeat (lease.py) reads lease.json, then rewrites it: one paused between
  the two hands the lease back to the stale driver, and then the other driver fails its next
  check and stops; at any time one driver passes the checks.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LeaseLost
from ..redact import redact_url
from ..storage.store import Store


@dataclass(frozen=True)
class Fence:
    """The lease a driver holds on the run at `run_url` (`lease`: its file's name there),
    as plain data for Ray tasks."""
    run_url: str
    lease: str
    token: str

    def check(self) -> None:
        """LeaseLost unless the run's lease still names this token."""
        holder = self._holder()
        if holder is not None and holder.get("owner") == self.token:
            return
        raise LeaseLost(f"{redact_url(self.run_url)}: this driver lost the lease of the run to "
                        f"{_describe(holder)}; it stopped before writing again (the run is "
                        f"that driver's now)")

    def _holder(self) -> dict | None:
        try:
            found = json.loads(Store(self.run_url).read_text(self.lease))
        except (FileNotFoundError, ValueError):
            return None
        return found if isinstance(found, dict) else None


def _describe(holder: dict | None) -> str:
    if holder is None:
        return "no one (its lease is gone)"
    beat = holder.get("heartbeat")
    ago = f", last heartbeat {max(0, time.time() - beat):.0f} s ago" \
        if isinstance(beat, (int, float)) else ""
    return f"another driver (host {holder.get('host')}, pid {holder.get('pid')}{ago})"


@dataclass(frozen=True)
class FencedStore(Store):
    """A Store whose every write, put, move and removal first checks `fence`."""
    fence: Fence | None = None

    def sub(self, name: str) -> FencedStore:
        return FencedStore(f"{self.url}/{name}", self.fence)

    def write_bytes(self, name: str, data) -> None:
        self.fence.check()
        super().write_bytes(name, data)

    def create_exclusive(self, name: str, data: bytes) -> bool:
        self.fence.check()
        return super().create_exclusive(name, data)

    def put(self, local: Path, name: str) -> None:
        self.fence.check()
        super().put(local, name)

    def move(self, name: str, target: str) -> None:
        self.fence.check()
        super().move(name, target)

    def remove(self, name: str) -> None:
        self.fence.check()
        super().remove(name)

    def remove_tree(self) -> None:
        self.fence.check()
        super().remove_tree()
