"""The run's rejects, read once by the finalizer (RunDir.reject_tally) and kept up to date as
it drops row rejects that a later attempt embedded and rewrites duplicates.jsonl: the counts
that reconciliation (per unit) and report.json (by reason) need, without a second read."""
from __future__ import annotations

import collections
from fnmatch import fnmatch

import numpy as np

from ..rundir import layout


class RejectTally:
    def __init__(self, files: dict[str, collections.Counter]):
        self.files = dict(files)

    def per_unit(self) -> dict[str, int]:
        """unit name -> rows the read stage rejected in it."""
        return {layout.unit_of(name): sum(c.values()) for name, c in self.files.items()
                if fnmatch(name, layout.UNIT_REJECTS_GLOB)}

    def drop_rows(self, keys: np.ndarray) -> None:
        """Forget the row rejects of `keys` (RunDir.drop_row_rejects removed their files)."""
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
