"""The run's rejects, read once by the finalizer (RunDir.rejects.tally) and kept up to date as
it drops row rejects that a later attempt embedded and rewrites duplicates.jsonl: the counts
that reconciliation (per unit) and report.json (by reason) need, without a second read."""
from __future__ import annotations

import collections
from fnmatch import fnmatch

import numpy as np
import pyarrow as pa

from ..rundir import layout


class RejectTally:
    def __init__(self, files: dict[str, collections.Counter]):
        self.files = dict(files)

    def per_unit(self) -> dict[str, int]:
        """unit name -> rows the read stage rejected in it."""
        return {layout.unit_of(name): sum(c.values()) for name, c in self.files.items()
                if fnmatch(name, layout.UNIT_REJECTS_GLOB)}

    def drop_rows(self, keys: np.ndarray) -> None:
        """Forget the row rejects of `keys` (RunDir.rejects.drop_rows removed their files)."""
        wanted = set(keys.tolist())
        self.files = {n: c for n, c in self.files.items()
                      if not (fnmatch(n, layout.ROW_REJECTS_GLOB)
                              and layout.key_of_row_rejects(n) in wanted)}

    def set_duplicates(self, count: int) -> None:
        self.files.pop(layout.DUPLICATES, None)
        if count:
            self.files[layout.DUPLICATES] = collections.Counter({"duplicate_id": count})

    def by_reason(self) -> dict[str, int]:
        total = collections.Counter()
        for counts in self.files.values():
            total.update(counts)
        return dict(sorted(total.items()))


class LaterRejects:
    """Pass 2 consumer: which row-rejected keys (a failed attempt's rejects) are in the
    merged rows after all, and at which positions (few: one file per row)."""

    def __init__(self, keys: np.ndarray):
        self.keys = keys
        self.found_keys, self.found_pos = [], []

    def __call__(self, start: int, chunk: pa.Table) -> None:
        if not len(self.keys):
            return
        keys = chunk.column("key").to_numpy()
        hit = np.flatnonzero(np.isin(keys, self.keys))
        self.found_keys.append(keys[hit])
        self.found_pos.append(start + hit)

    def embedded(self, dups) -> np.ndarray:
        keys, pos = np.concatenate(self.found_keys or [[]]), np.concatenate(self.found_pos or [[]])
        kept = [not dups.dropped_in(int(p), 1)[0] for p in pos]
        return np.sort(keys[np.array(kept, bool)].astype(np.int64))
