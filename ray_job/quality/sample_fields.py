"""The input fields of the sampled rows (their labels and titles), read again by key: a key
is the row's file and position (read/keys.py), so each stretch of sampled rows is one short
read unit of its own (the lines or rows between its first and last key) instead of a pass
over the corpus. A compressed file cannot be read from the middle: its sampled rows cost one
read of the unit that holds them. Each file is checked against the run's manifest, and each
record's id against the row's: changed inputs give fewer fields and one line, never another
paper's."""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator

import numpy as np

from ..errors import DataError
from ..read.inputs import ReadUnit
from ..read.keys import POSITION_BITS, split_key, unit_key_bounds
from ..read.plan import ReadPlan
from ..read.readers import read_unit
from ..read.text import RejectRow, record_id
from ..redact import redact_text
from ..storage.failures import StorageError


def sample_records(rows: np.ndarray, keys: np.ndarray, ids: list[str], id_field: str,
                   plan: ReadPlan | None, fields: tuple[str, ...]) -> list[dict | None]:
    """The record (`fields` and the id) of each sampled row; None where it was not found."""
    found: list[dict | None] = [None] * len(keys)
    if plan is None or not len(keys):
        return found
    wanted = {int(k): i for i, k in enumerate(keys)}
    try:
        for unit in _units(plan, rows, keys):
            expected = plan.manifest[unit.file_index] if plan.manifest else None
            for position, item in read_unit(unit, (id_field, *fields), expected):
                i = wanted.get((unit.file_index << POSITION_BITS) | position)
                if i is not None and isinstance(item, dict) and _same_id(item, id_field, ids[i]):
                    found[i] = item
    except (DataError, OSError, StorageError) as exc:
        why = redact_text((str(exc).strip().splitlines() or [type(exc).__name__])[0])
        print(f"ray-embed: the quality sample's labels stop early ({why})", file=sys.stderr)
    return found


def _units(plan: ReadPlan, rows: np.ndarray, keys: np.ndarray) -> Iterator[ReadUnit]:
    """One read per stretch of consecutive sampled rows inside one plan unit (a whole unit
    where it cannot be entered in the middle, once)."""
    lo, _hi = unit_key_bounds(plan.units)
    holder = np.searchsorted(lo, keys, "right") - 1
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(holder) != 0)) + 1
    whole_read: set[int] = set()
    for group in np.split(np.arange(len(keys)), breaks):
        unit = plan.units[int(holder[group[0]])]
        if not _seekable(unit):
            if int(holder[group[0]]) not in whole_read:
                whole_read.add(int(holder[group[0]]))
                yield unit
            continue
        first, last = split_key(int(keys[group[0]]))[1], split_key(int(keys[group[-1]]))[1]
        yield dataclasses.replace(unit, start=first, end=last + 1, max_rows=None)


def _seekable(unit: ReadUnit) -> bool:
    return unit.format in ("parquet", "duckdb", "json_array") or (
        unit.format == "jsonl" and not unit.compression)


def _same_id(record: dict, id_field: str, row_id: str) -> bool:
    try:
        return record_id(record, id_field) == row_id
    except RejectRow:
        return False
