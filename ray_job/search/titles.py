"""Titles of a run's papers, for search results: `index/titles.arrow`, one row per row of
embeddings.h5, read again from the run's inputs (finalize/row_records.py), each file checked
against the run's manifest first: inputs moved or changed since the run give an index without
titles and one line that says why. Written in batches of BATCH_ROWS; a lookup maps only the
batch it needs.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import UserError
from ..finalize.row_records import row_records, text_field
from ..read.inputs import ReadUnit
from ..read.plan import ReadPlan
from ..rundir.job import JobRecord

TITLE_FIELD = "title"
BATCH_ROWS = 65536
SCHEMA = pa.schema([("title", pa.string())])


def write_titles(h5_path: Path, job: JobRecord, target: Path,
                 units: ReadPlan | list[ReadUnit] | None = None) -> bool:
    """Write the titles file from the inputs of the run `job`; False (and nothing written)
    when they cannot be read again or hold no titles."""
    try:
        found = _write(h5_path, job, target, units)
    except UserError as exc:
        found, why = 0, str(exc)
    else:
        why = "no titles in the input"
    if not found:
        print(f"ray-embed: titles left out of the index ({why})", file=sys.stderr)
        target.unlink(missing_ok=True)
    return bool(found)


def _write(h5_path: Path, job: JobRecord, target: Path,
           units: ReadPlan | list[ReadUnit] | None) -> int:
    """Titles found (rows without one show none)."""
    found = 0
    batch: list[str | None] = []
    with ipc.new_file(str(target), SCHEMA) as writer:
        for record in row_records(h5_path, job, (TITLE_FIELD,), units):
            batch.append(text_field(record, TITLE_FIELD))
            found += batch[-1] is not None
            if len(batch) == BATCH_ROWS:
                writer.write_table(pa.table({"title": batch}, schema=SCHEMA))
                batch = []
        if batch:
            writer.write_table(pa.table({"title": batch}, schema=SCHEMA))
    return found


def read_titles(path: Path | None, rows: list[int]) -> list[str | None]:
    """The titles of these h5 rows (None for all when there is no titles file)."""
    if path is None or not path.is_file():
        return [None] * len(rows)
    with pa.memory_map(str(path)) as source:
        reader = ipc.open_file(source)
        return [reader.get_batch(r // BATCH_ROWS).column(0)[r % BATCH_ROWS].as_py()
                for r in rows]
