"""Resume state, with nothing per row in the driver.

The driver reads the key column of one shard at a time and keeps, per read unit of the plan,
only how many shard rows fall in its key range and the names of the shards that hold them.
A unit whose reads record (written last by the task that read it) matches the unit and this
run's --previous, and whose rows all landed (seen = in shards + rejected + reused, counted
over shards whose key ranges inside the unit do not overlap), is finished: it is not read
again (its reads, rejects and reuse files stay for finalize). Every other unit's task gets
the names of its shards only and builds the set of its own done keys. Pure functions, and
`units_to_read` (the driver's call, over a RunDir); the tasks' side is in sources.py.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from ..redact import redact_url
from .inputs import ReadUnit
from .keys import unit_key_bounds

log = logging.getLogger("ray_job")


def units_to_read(run_dir, units: list[ReadUnit], previous: str | None,
                  on_quarantine=None) -> tuple[list[ReadUnit], list[list[str]]]:
    """The units this attempt reads and, per unit, the shards holding its done keys: the
    run's shards are scanned one at a time (unreadable ones quarantined first, then
    `on_quarantine(error)`), units finished by an earlier attempt are skipped. `previous`:
    the fingerprint of this run's --previous lookup (None without one)."""
    state = scan_shards(units, run_dir.shards.keys(on_quarantine))
    todo, done_shards = state.todo(run_dir.reads.units(), previous)
    if len(todo) < len(units):
        log.info("%d of %d read units were finished by an earlier attempt",
                 len(units) - len(todo), len(units))
    return todo, done_shards


def unit_fingerprint(unit: ReadUnit) -> str:
    """What a unit reads (file, range, row cap, query): a reads record is this unit's only if
    it names the same fingerprint (a larger --limit re-cuts a unit under the same name). The
    file is named by its redacted URL, as in the manifest: a re-signed URL is the same unit."""
    text = json.dumps({**asdict(unit), "path": redact_url(unit.path)}, sort_keys=True,
                      default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def resume_fields(unit: ReadUnit, rejected: int, reused: int, previous: str | None) -> dict:
    """What a unit's reads record (next to `seen`, text.reads_record) holds so that a later
    attempt can tell the unit is finished. `previous`: the --previous fingerprint."""
    return {"rejected": rejected, "reused": reused, "unit": unit_fingerprint(unit),
            "previous": previous}


@dataclass
class ResumeState:
    """Per unit of the plan: rows already in shards (by key) and the shards that hold them."""
    units: list[ReadUnit]
    shard_rows: np.ndarray                 # int64, one per unit
    shards: list[list[str]]                # shard names, one list per unit
    outside: int = 0                       # shard rows in no unit's range
    # per unit: two of its shards' key ranges (within the unit) overlap. A block written twice
    # with other rows (a task retried after its shard landed, on a block Ray cut otherwise)
    # leaves a key in two shards, and then a row count can add up while a row is missing.
    overlapping: np.ndarray | None = None  # bool, one per unit

    def finished(self, reads: dict[str, dict], previous: str | None) -> np.ndarray:
        """Which units need no read this time (see the module doc)."""
        overlapping = (self.overlapping if self.overlapping is not None
                       else np.zeros(len(self.units), dtype=bool))
        return np.array([is_finished(u, reads.get(u.name), int(self.shard_rows[i]), previous,
                                     bool(overlapping[i]))
                         for i, u in enumerate(self.units)], dtype=bool)

    def todo(self, reads: dict[str, dict],
             previous: str | None) -> tuple[list[ReadUnit], list[list[str]]]:
        """The units to read in this attempt and, for each, the shards holding its done keys."""
        done = self.finished(reads, previous)
        keep = np.flatnonzero(~done)
        return [self.units[i] for i in keep], [self.shards[i] for i in keep]


def is_finished(unit: ReadUnit, record: dict | None, shard_rows: int,
                previous: str | None, overlapping: bool = False) -> bool:
    """A unit is finished when its reads record is of this very unit and --previous, and every
    row it saw is in a shard, in its rejects or in its reuse list. Rows rejected later one by
    one (tokenizer, model) are not counted: such a unit is read again, as before, so a row the
    model failed on gets another try. Records of older versions (no fingerprint) never match.
    `overlapping`: the unit's shards overlap in key range, so `shard_rows` may count a key
    twice: the unit is read again, and its task skips exactly the keys already in shards."""
    if overlapping or not record or record.get("unit") != unit_fingerprint(unit):
        return False
    if record.get("previous") != previous:
        return False
    return record["seen"] == shard_rows + record["rejected"] + record["reused"]


def scan_shards(units: list[ReadUnit], shard_keys: Iterable[tuple[str, np.ndarray]]) -> ResumeState:
    """Fold (shard name, its keys) pairs, one shard at a time, into a ResumeState: memory is
    one shard's keys plus O(units + shards), whatever the row count."""
    lo, hi = unit_key_bounds(units) if units else (np.empty(0, np.int64), np.empty(0, np.int64))
    order = np.argsort(lo, kind="stable")            # plan order is key order; be sure
    lo_sorted, hi_sorted = lo[order], hi[order]
    rows = np.zeros(len(units), dtype=np.int64)
    shards: list[list[str]] = [[] for _ in units]
    ranges: list[list[tuple[int, int]]] = [[] for _ in units]
    outside = 0
    for name, keys in shard_keys:
        keys = np.asarray(keys, dtype=np.int64)
        at = units_of_keys(keys, lo_sorted, hi_sorted)
        inside = at >= 0
        outside += int((~inside).sum())
        counts = np.bincount(at[inside], minlength=len(units))
        first, last = _range_per_unit(keys[inside], at[inside], len(units))
        for u in np.flatnonzero(counts):
            shards[order[u]].append(name)
            ranges[order[u]].append((int(first[u]), int(last[u])))
        rows[order] += counts
    overlapping = np.array([_overlap(r) for r in ranges], dtype=bool)
    return ResumeState(list(units), rows, shards, outside, overlapping)


def _range_per_unit(keys: np.ndarray, at: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest of `keys` per unit index `at` (unset where a unit has none)."""
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, at, keys)
    np.maximum.at(last, at, keys)
    return first, last


def _overlap(ranges: list[tuple[int, int]]) -> bool:
    """Whether any two closed key ranges share a key (sorted by start, each must end before
    the next begins)."""
    ranges = sorted(ranges)
    pairs = zip(ranges, ranges[1:], strict=False)
    return any(b_start <= a_end for (_, a_end), (b_start, _) in pairs)


def units_of_keys(keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Index (into sorted, disjoint [lo, hi) ranges) of the range holding each key; -1: none."""
    at = np.searchsorted(lo, keys, side="right") - 1
    ok = at >= 0
    ok[ok] = keys[ok] < hi[at[ok]]
    return np.where(ok, at, -1)


def unit_done_keys(unit: ReadUnit, shard_keys: Iterable[np.ndarray]) -> set[int]:
    """The keys of `unit` already in the given shards (which may hold other units' keys too)."""
    (lo,), (hi,) = unit_key_bounds([unit])
    done: set[int] = set()
    for keys in shard_keys:
        keys = np.asarray(keys, dtype=np.int64)
        done.update(keys[(keys >= lo) & (keys < hi)].tolist())
    return done
