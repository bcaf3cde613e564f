"""Titles of a run's papers, for search results: `index/titles.arrow`, one row per row of
embeddings.h5.

The h5 holds ids in key order, and key order is input order, so its ids are a subsequence of
the input records' ids read in order: one pass over the inputs, matching the next id, finds
each row's record (rejected rows and later duplicates are simply passed over; a rejected
record with the same id as a later embedded one lends its title, which is the same paper).
Written in batches of BATCH_ROWS; a lookup maps only the batch it needs. The inputs are read
as the run's frozen plan recorded them (each file checked against its manifest entry): inputs
that were moved or changed since give an index without titles, and one line that says why.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import h5py
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import DataError, InputChanged, UserError
from ..read.inputs import MAX_BLOCK_BYTES, SqlSpec, plan_units, resolve_inputs
from ..read.plan import ReadPlan
from ..read.readers import read_unit
from ..read.text import RejectRow, record_id, utf8_checked
from ..redact import redact_text
from ..rundir.job import JobRecord

TITLE_FIELD = "title"
BATCH_ROWS = 65536
SCHEMA = pa.schema([("title", pa.string())])


def input_records(job: JobRecord, plan: ReadPlan | None = None) -> Iterator[dict]:
    """Every readable record of the run's inputs, in key order: the run's frozen read units
    when given (each file checked against the plan's manifest), else the inputs planned
    again."""
    if plan is None:
        spec = job.spec
        units = plan_units(resolve_inputs(spec.inputs), MAX_BLOCK_BYTES, job.options.limit,
                           SqlSpec(spec.id_field, spec.table, spec.query))
        plan = ReadPlan([], MAX_BLOCK_BYTES, job.options.limit, units)
    fields = (job.spec.id_field, TITLE_FIELD)
    for unit in plan.units:
        expected = plan.manifest[unit.file_index] if plan.manifest else None
        for _position, item in read_unit(unit, fields, expected):
            if isinstance(item, dict):
                yield item


def write_titles(h5_path: Path, job: JobRecord, target: Path,
                 plan: ReadPlan | None = None) -> bool:
    """Write the titles file from the inputs of the run `job`; False (and nothing written)
    when they cannot be read again (moved, changed, unreadable) or hold no titles."""
    try:
        return _write(h5_path, job, target, plan)
    except InputChanged as exc:
        why = f"the run's input {exc.path} {exc.change} since the run" if exc.path else exc
        return _left_out(target, why)
    except (UserError, DataError, OSError) as exc:
        return _left_out(target, redact_text(str(exc).strip().splitlines()[0]))


def _left_out(target: Path, why) -> bool:
    print(f"ray-embed: titles left out of the index ({why})", file=sys.stderr)
    target.unlink(missing_ok=True)
    return False


def _write(h5_path: Path, job: JobRecord, target: Path, plan: ReadPlan | None) -> bool:
    wanted = _h5_ids(h5_path)
    next_id = next(wanted, None)
    rows = found = 0
    batch: list[str | None] = []
    with ipc.new_file(str(target), SCHEMA) as writer:
        for record in input_records(job, plan):
            if next_id is None:
                break
            if _record_id(record, job.spec.id_field) != next_id:
                continue
            title = _title(record)
            found += title is not None
            batch.append(title)
            rows += 1
            next_id = next(wanted, None)
            if len(batch) == BATCH_ROWS or next_id is None:
                writer.write_table(pa.table({"title": batch}, schema=SCHEMA))
                batch = []
    if next_id is not None or not found:
        return _left_out(target, "no titles in the input" if next_id is None
                         else f"{next_id!r} not found again")
    return True


def _h5_ids(h5_path: Path) -> Iterator[str]:
    with h5py.File(h5_path, "r") as h5:
        ids = h5["ids"]
        for start in range(0, ids.shape[0], BATCH_ROWS):
            yield from (i.decode() for i in ids[start:start + BATCH_ROWS])


def _record_id(record: dict, id_field: str) -> str | None:
    try:
        return record_id(record, id_field)
    except RejectRow:
        return None


def _title(record: dict) -> str | None:
    """The record's cleaned title; None for none, or one UTF-8 cannot encode (a lone
    surrogate: the record was rejected for it, but another of its id may be embedded)."""
    value = record.get(TITLE_FIELD)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return utf8_checked(" ".join(value.split()), "bad_text", "title")
    except RejectRow:
        return None


def read_titles(path: Path | None, rows: list[int]) -> list[str | None]:
    """The titles of these h5 rows (None for all when there is no titles file)."""
    if path is None or not path.is_file():
        return [None] * len(rows)
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_file(source)
        return [reader.get_batch(r // BATCH_ROWS).column(0)[r % BATCH_ROWS].as_py()
                for r in rows]
