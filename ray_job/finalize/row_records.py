"""The input record behind each row of embeddings.h5, read again from the run's inputs (for
titles, categories, ...: fields the result does not store).

The h5 holds ids in key order, and key order is input order, so its ids are a subsequence of
the input records' ids read in order: one pass over the inputs, matching the next id, finds
each row's record (rejected rows and later duplicates are simply passed over; a rejected
record with the same id as a later embedded one lends its fields, which is the same paper).
Nothing is held but one batch of ids. Given the run's frozen plan, each file is checked
against its manifest entry as it is read: inputs moved or changed since the run are one line
(RowsNotFound, naming the file), never another paper's fields.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py

from ..errors import DataError, InputChanged, UserError
from ..read.inputs import MAX_BLOCK_BYTES, ReadUnit, SqlSpec, plan_units, resolve_inputs
from ..read.plan import ReadPlan
from ..read.readers import read_unit
from ..read.text import RejectRow, record_id, utf8_checked
from ..redact import redact_text
from ..rundir.job import JobRecord

ID_BATCH = 65536


class RowsNotFound(UserError):
    """An id of embeddings.h5 was not found again in the inputs (they changed, or are gone)."""


def input_records(job: JobRecord, fields: tuple[str, ...],
                  units: ReadPlan | list[ReadUnit] | None = None) -> Iterator[dict]:
    """Every readable record of the run's inputs (only `fields` and the id), in key order.
    `units`: the run's frozen plan (each file checked against its manifest entry), its bare
    read units, or None: the inputs planned again."""
    manifest: list[dict] = []
    if isinstance(units, ReadPlan):
        units, manifest = units.units, units.manifest
    elif units is None:
        spec = job.spec
        units = plan_units(resolve_inputs(spec.inputs), MAX_BLOCK_BYTES, job.options.limit,
                           SqlSpec(spec.id_field, spec.table, spec.query))
    for unit in units:
        expected = manifest[unit.file_index] if manifest else None
        for _position, item in read_unit(unit, (job.spec.id_field, *fields), expected):
            if isinstance(item, dict):
                yield item


def row_records(h5_path: Path, job: JobRecord, fields: tuple[str, ...],
                units: ReadPlan | list[ReadUnit] | None = None) -> Iterator[dict]:
    """One record per row of `h5_path`, in row order. Raises RowsNotFound (after the rows
    found) when an id is not found again, or an input is gone, changed or unreadable."""
    try:
        yield from _matched(h5_path, job, fields, units)
    except InputChanged as exc:
        raise RowsNotFound(f"the run's input {exc.path} {exc.change} since the run"
                           if exc.path else str(exc)) from None
    except (DataError, OSError) as exc:
        raise RowsNotFound(redact_text(str(exc).strip().splitlines()[0])) from None


def _matched(h5_path: Path, job: JobRecord, fields: tuple[str, ...],
             units: ReadPlan | list[ReadUnit] | None) -> Iterator[dict]:
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
