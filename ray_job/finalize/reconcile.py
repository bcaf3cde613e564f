"""Reconciliation: for every read unit of the plan, rows seen by the read stage = rows in the
output + rows rejected + rows dropped as duplicate ids. Proven before the output is written;
a unit that does not add up fails the run, named, so a lost row can never pass silently."""
from __future__ import annotations

import numpy as np

from ..errors import DataError
from ..read.keys import unit_key_bounds

SHOWN = 3


class ReconciliationError(DataError):
    """Rows went missing (or appeared) between reading and the output."""


def _per_unit(sorted_keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_keys, hi) - np.searchsorted(sorted_keys, lo)


class UnitCounter:
    """Rows per unit, counted from any number of sorted key arrays (counts in [lo, hi) add
    up over pieces), so a whole run's keys never need to be in memory at once."""

    def __init__(self, units: list):
        self.lo, self.hi = unit_key_bounds(units)
        self.counts = np.zeros(len(units), np.int64)
        self.total = 0

    def add(self, sorted_keys: np.ndarray) -> None:
        self.counts += _per_unit(sorted_keys, self.lo, self.hi)
        self.total += len(sorted_keys)


def reconcile(units: list, kept_keys: np.ndarray, duplicate_keys: np.ndarray,
              reads: dict[str, dict], rejected: dict[str, int],
              row_rejected_keys: np.ndarray | None = None) -> dict:
    """Check every unit; returns the totals for report.json. `kept_keys`: keys of the output
    rows; `duplicate_keys`: rows dropped as duplicate ids; `reads`: unit name -> {"seen": n};
    `rejected`: unit name -> rows in its rejects file; `row_rejected_keys`: keys of rows
    rejected later, one by one (by the tokenizer)."""
    kept, dups = UnitCounter(units), UnitCounter(units)
    kept.add(np.sort(kept_keys))
    dups.add(np.sort(duplicate_keys))
    return reconcile_counts(units, kept, dups, reads, rejected, row_rejected_keys)


def reconcile_counts(units: list, kept: UnitCounter, dups: UnitCounter,
                     reads: dict[str, dict], rejected: dict[str, int],
                     row_rejected_keys: np.ndarray | None = None) -> dict:
    """`reconcile` from rows per unit already counted (the streaming finalizer's way)."""
    lo, hi = kept.lo, kept.hi
    out, dropped = kept.counts, dups.counts
    if row_rejected_keys is not None and len(row_rejected_keys):
        later = _per_unit(np.sort(row_rejected_keys), lo, hi)
        rejected = {u.name: rejected.get(u.name, 0) + int(later[i]) for i, u in enumerate(units)}
    problems, seen_total = [], 0
    for i, unit in enumerate(units):
        if unit.name not in reads:
            problems.append(f"unit {unit.name} ({unit.path}) was never read to the end")
            continue
        seen, rej = reads[unit.name]["seen"], rejected.get(unit.name, 0)
        seen_total += seen
        if seen != out[i] + rej + dropped[i]:
            problems.append(f"unit {unit.name} ({unit.path}): {seen} rows seen, but {out[i]} in "
                            f"the output + {rej} rejected + {dropped[i]} duplicates")
    outside = kept.total - int(out.sum())
    if outside:
        problems.append(f"{outside} output rows belong to no read unit of the plan")
    if problems:
        more = f"; and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
        raise ReconciliationError("rows do not add up: " + "; ".join(problems[:SHOWN]) + more)
    return {"units": len(units), "rows_seen": seen_total, "rows_in_output": kept.total,
            "rows_rejected_by_readers": int(sum(rejected.get(u.name, 0) for u in units)),
            "duplicates": dups.total}
