"""Reuse lists of incremental runs (`--previous`): per read unit, the rows whose old vector is
kept (key, id, text hash, row in the old embeddings.h5) and its reused/new/changed counts.
Pure helpers; RunDir reads and writes the files."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc as ipc

REUSE_SCHEMA = pa.schema([("key", pa.int64()), ("id", pa.string()),
                          ("text_hash", pa.uint64()), ("previous_row", pa.int64())])
COUNT_NAMES = ("reused", "new", "changed")


def reuse_table(rows: dict) -> pa.Table:
    return pa.table({name: pa.array(rows[name], REUSE_SCHEMA.field(name).type)
                     for name in REUSE_SCHEMA.names}, schema=REUSE_SCHEMA)


def encode_reuse(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, REUSE_SCHEMA) as writer:
        writer.write_table(table)
    return sink.getvalue()


def decode_reuse(source) -> pa.Table:
    return ipc.open_file(source).read_all()
