"""External sort on local scratch: tables spilled as sorted runs (Arrow IPC files), then a
chunked k-way merge of the runs. Memory: one run buffer while spilling, one record batch per
run while merging; never the whole data.

Rows are ordered by int64 columns `by` (lexicographically); the merge emits every row up to
the smallest "last row of the current batch" over all runs, so each step makes progress and
never emits a row before a smaller one that is still unread.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

RUN_ROWS = 2_000_000          # rows buffered before a run is sorted and spilled
BATCH_ROWS = 16_384           # rows per record batch in a run (what the merge holds per run)


def sort_table(table: pa.Table, by: tuple[str, ...]) -> pa.Table:
    """`table` ordered by the columns `by` (stable; always a copy)."""
    order = np.lexsort([table.column(c).to_numpy() for c in reversed(by)])
    return table.take(order)


class RunWriter:
    """Collects tables; every `run_rows` rows become one sorted run file in `folder`."""

    def __init__(self, folder: Path, prefix: str, by: tuple[str, ...], run_rows: int | None = None):
        self.folder, self.prefix, self.by = Path(folder), prefix, by
        self.run_rows = run_rows or RUN_ROWS
        self.parts: list[pa.Table] = []
        self.buffered = 0
        self.runs: list[Path] = []

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.parts.append(table)
            self.buffered += table.num_rows
            if self.buffered >= self.run_rows:
                self._spill()

    def _spill(self) -> None:
        table = sort_table(pa.concat_tables(self.parts), self.by)
        self.parts, self.buffered = [], 0
        path = self.folder / f"{self.prefix}-{len(self.runs):05d}.arrow"
        write_table(path, table)
        self.runs.append(path)

    def finish(self) -> list[Path]:
        if self.parts:
            self._spill()
        return self.runs


def write_table(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=BATCH_ROWS)


def read_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The record batches of an IPC file, one at a time (read, not memory mapped)."""
    with pa.OSFile(str(path), "rb") as source:
        reader = ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def _rows_upto(columns: list[np.ndarray], bound: tuple[int, ...]) -> int:
    """How many leading rows of sorted `columns` are <= `bound` (lexicographic)."""
    lo, hi = 0, len(columns[0])
    for col, b in zip(columns[:-1], bound[:-1], strict=True):
        part = col[lo:hi]
        below = int(np.searchsorted(part, b, "left"))
        equal_end = int(np.searchsorted(part, b, "right"))
        if equal_end == below:
            return lo + below
        lo, hi = lo + below, lo + equal_end
    return lo + int(np.searchsorted(columns[-1][lo:hi], bound[-1], "right"))


class _Cursor:
    def __init__(self, path: Path, by: tuple[str, ...]):
        self.batches = read_batches(path)
        self.by = by
        self._load()

    def _load(self) -> None:
        self.batch = next(self.batches, None)
        while self.batch is not None and self.batch.num_rows == 0:
            self.batch = next(self.batches, None)
        if self.batch is not None:
            self.cols = [self.batch.column(c).to_numpy() for c in self.by]
            self.pos = 0

    def last(self) -> tuple[int, ...]:
        return tuple(int(c[-1]) for c in self.cols)

    def take_upto(self, bound: tuple[int, ...]) -> pa.RecordBatch:
        n = _rows_upto([c[self.pos:] for c in self.cols], bound)
        out = self.batch.slice(self.pos, n)
        self.pos += n
        if self.pos == self.batch.num_rows:
            self._load()
        return out


def merge_runs(runs: list[Path], by: tuple[str, ...]) -> Iterator[pa.Table]:
    """The rows of all sorted runs, in order, as consecutive tables."""
    cursors = [c for c in (_Cursor(p, by) for p in runs) if c.batch is not None]
    while cursors:
        bound = min(c.last() for c in cursors)
        parts = [b for b in (c.take_upto(bound) for c in cursors) if b.num_rows]
        table = pa.Table.from_batches(parts)
        yield table if len(parts) == 1 else sort_table(table, by)
        cursors = [c for c in cursors if c.batch is not None]
