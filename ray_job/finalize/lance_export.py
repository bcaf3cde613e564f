"""`--export lance`: the run as a LanceDB table, `RUN/lance/papers.lance` (id, title, url,
vector), for search stacks built on LanceDB:

    import lancedb
    table = lancedb.connect("RUN/lance").open_table("papers")
    table.search(query_vector).metric("cosine").limit(10).to_list()

Written in bounded memory: LanceDB takes a stream of record batches, made one chunk of
embeddings.h5 at a time, with each row's title read again from the inputs alongside
(finalize/row_records.py; no titles, with a note, when the inputs cannot be read again).
The table is built in a fresh folder and put in place whole (RunDir.results.folder_writer).
"""
from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa

from ..errors import UserError
from ..extras import require
from ..rundir.layout import LANCE, LANCE_TABLE
from ..rundir.rundir import RunDir
from .row_records import row_records, text_field

CHUNK_ROWS = 16384
TITLE_FIELD = "title"


def lance_schema(dim: int) -> pa.Schema:
    return pa.schema([("id", pa.string()), ("title", pa.string()), ("url", pa.string()),
                      ("vector", pa.list_(pa.float32(), dim))])


def row_titles(h5_path: Path, run_dir: RunDir) -> Iterator[str | None]:
    """Each row's title, in row order; None from the first row not found again on (with a
    one-line note: the inputs changed or are gone)."""
    from ..read.plan import frozen_plan

    units = frozen_plan(run_dir)     # each file checked against its manifest entry
    try:
        job = run_dir.load_job()
        for record in row_records(h5_path, job, (TITLE_FIELD,), units):
            yield text_field(record, TITLE_FIELD)
    except UserError as exc:
        print(f"ray-embed: the Lance table lacks titles from here on ({exc})", file=sys.stderr)
    while True:
        yield None


def record_batches(h5_path: Path, run_dir: RunDir, dropped=None) -> Iterator[pa.RecordBatch]:
    """`dropped` (exports.DroppedRows): rows left out."""
    titles = row_titles(h5_path, run_dir)
    with h5py.File(h5_path, "r") as h5:
        ids, emb = h5["ids"], h5["embeddings"]
        urls = h5["urls"] if "urls" in h5 else None
        rows, dim = emb.shape
        schema = lance_schema(dim)
        for start in range(0, rows, CHUNK_ROWS):
            stop = min(start + CHUNK_ROWS, rows)
            matrix = np.ascontiguousarray(emb[start:stop], dtype=np.float32)
            batch = pa.record_batch([
                pa.array([i.decode() for i in ids[start:stop]], pa.string()),
                pa.array(list(itertools.islice(titles, stop - start)), pa.string()),
                pa.array([u.decode() for u in urls[start:stop]], pa.string())
                if urls is not None else pa.nulls(stop - start, pa.string()),
                pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dim),
            ], schema=schema)
            yield batch if dropped is None else batch.filter(
                pa.array(dropped.kept(start, stop - start)))


def export_lance(h5_path: Path, run_dir: RunDir, dropped=None) -> str:
    """Write RUN/lance/papers.lance from `h5_path`; returns the folder's name in the run."""
    lancedb = require("lancedb", "lance")
    with h5py.File(h5_path, "r") as h5:
        dim = h5["embeddings"].shape[1]
    name = f"{LANCE}/{LANCE_TABLE}.lance"
    with run_dir.results.folder_writer(name) as folder:
        db = lancedb.connect(str(folder.parent))
        db.create_table(LANCE_TABLE, data=record_batches(h5_path, run_dir, dropped),
                        schema=lance_schema(dim), mode="create")
    return name
