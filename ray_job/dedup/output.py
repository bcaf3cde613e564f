"""RUN/dedup/pairs.parquet: one row per dropped paper, in row order.

    id                  string   the dropped paper
    row                 int64    its row in embeddings.h5
    duplicate_of        string   the paper kept of its component (its lowest row)
    duplicate_of_row    int64
    cosine              float32  exact cosine to the paper it links to (its most similar
                                 earlier paper of its cluster; the kept one or a paper
                                 linked to it)
    cluster             int64    the kept paper's row: names the component
    title               string   null where the inputs have none or cannot be read again
    duplicate_of_title  string

Ids are read from embeddings.h5 for those rows only; titles from the index's titles.arrow
when the index is current, else in one pass over the inputs (finalize/row_records.py) that
picks the rows wanted.
"""
from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UserError
from ..finalize.row_records import row_records, text_field
from ..rundir.job import JobRecord
from ..search.titles import TITLE_FIELD, read_titles
from .rescore import read_rows

SCHEMA = pa.schema([("id", pa.string()), ("row", pa.int64()), ("duplicate_of", pa.string()),
                    ("duplicate_of_row", pa.int64()), ("cosine", pa.float32()),
                    ("cluster", pa.int64()), ("title", pa.string()),
                    ("duplicate_of_title", pa.string())])


def ids_of(h5: Path, rows: np.ndarray) -> dict[int, str]:
    """The ids of these rows (any order, repeats allowed)."""
    wanted = np.unique(rows)
    with h5py.File(h5, "r") as f:
        ids = read_rows(f["ids"], wanted)
    return {int(r): i.decode() for r, i in zip(wanted, ids, strict=True)}


def titles_of(rows: np.ndarray, h5: Path, job: JobRecord, units,
              titles_file: Path | None) -> dict[int, str | None]:
    """The titles of these rows: from the index's titles file, else one pass over the inputs
    (a note, and no titles, when they cannot be read again)."""
    wanted = np.unique(rows)
    if titles_file is not None:
        return dict(zip(wanted.tolist(), read_titles(titles_file, wanted.tolist()),
                        strict=True))
    found: dict[int, str | None] = {}
    if not len(wanted):
        return found
    try:
        at = 0
        for row, record in enumerate(row_records(h5, job, (TITLE_FIELD,), units)):
            if row == wanted[at]:
                found[row] = text_field(record, TITLE_FIELD)
                at += 1
                if at == len(wanted):
                    break
    except UserError as exc:
        print(f"ray-embed: dedup pairs without titles ({exc})", file=sys.stderr)
    return found


def pairs_table(rows, cosines, roots, ids: dict, titles: dict) -> pa.Table:
    return pa.table({
        "id": [ids[int(r)] for r in rows], "row": rows,
        "duplicate_of": [ids[int(r)] for r in roots], "duplicate_of_row": roots,
        "cosine": cosines.astype(np.float32), "cluster": roots,
        "title": [titles.get(int(r)) for r in rows],
        "duplicate_of_title": [titles.get(int(r)) for r in roots]}, schema=SCHEMA)


def write_pairs(path: Path, table: pa.Table) -> None:
    pq.write_table(table, str(path))
