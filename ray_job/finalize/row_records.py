"""The input record behind each row of embeddings.h5, read again from the run's inputs (for
titles, categories, ...: fields the result does not store).

The h5 holds ids in key order, and key order is input order, so its ids are a subsequence of
the input records' ids read in order: one pass over the inputs, matching the next id, finds
each row's record (rejected rows and later duplicates are simply passed over; a rejected
record with the same id as a later embedded one lends its fields, which is the same paper).
Nothing is held but one batch of ids.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import h5py

from ..errors import UserError
from ..read.inputs import MAX_BLOCK_BYTES, ReadUnit, SqlSpec, plan_units, resolve_inputs
from ..read.readers import read_unit
from ..read.text import RejectRow, record_id, utf8_checked
from ..rundir.job import JobRecord

ID_BATCH = 65536


class RowsNotFound(UserError):
    """An id of embeddings.h5 was not found again in the inputs (they changed, or are gone)."""


def input_records(job: JobRecord, fields: tuple[str, ...],
                  units: list[ReadUnit] | None = None) -> Iterator[dict]:
    """Every readable record of the run's inputs (only `fields` and the id), in key order:
    the run's frozen read units when given, else the inputs planned again."""
    if units is None:
        spec = job.spec
        units = plan_units(resolve_inputs(spec.inputs), MAX_BLOCK_BYTES, job.options.limit,
                           SqlSpec(spec.id_field, spec.table, spec.query))
    for unit in units:
        for _position, item in read_unit(unit, (job.spec.id_field, *fields)):
            if isinstance(item, dict):
                yield item


def row_records(h5_path: Path, job: JobRecord, fields: tuple[str, ...],
                units: list[ReadUnit] | None = None) -> Iterator[dict]:
    """One record per row of `h5_path`, in row order. Raises RowsNotFound (after the rows
    found) when an id is not found again."""
    wanted = h5_ids(h5_path)
    next_id = next(wanted, None)
    for record in input_records(job, fields, units):
        if next_id is None:
            return
        if _record_id(record, job.spec.id_field) != next_id:
            continue
        yield record
        next_id = next(wanted, None)
    if next_id is not None:
        raise RowsNotFound(f"{next_id!r} not found again in the inputs")


def h5_ids(h5_path: Path) -> Iterator[str]:
    with h5py.File(h5_path, "r") as h5:
        ids = h5["ids"]
        for start in range(0, ids.shape[0], ID_BATCH):
            yield from (i.decode() for i in ids[start:start + ID_BATCH])


def _record_id(record: dict, id_field: str) -> str | None:
    try:
        return record_id(record, id_field)
    except RejectRow:
        return None


def text_field(record: dict, name: str) -> str | None:
    """A record's field as one line of text; None when missing, blank, or not UTF-8 (a lone
    surrogate: the record was rejected for it, but another of its id may be embedded)."""
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return utf8_checked(" ".join(value.split()), "bad_text", name)
    except RejectRow:
        return None
