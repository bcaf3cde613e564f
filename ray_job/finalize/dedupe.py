"""Duplicate ids over any number of rows without holding the ids: pass 2 hash-partitions
(id, position, key, seq) into bucket files on local scratch; each bucket is then small enough
to sort, and equal ids always share a bucket. The row with the lowest position (= lowest
key: positions are in key order) keeps the id, the others are duplicates.

What stays in memory for the whole run is a bitmap of the dropped positions (1 bit per row:
12.5 MB at 100M rows). The duplicates' records go to sorted runs by `seq`, so that
rejects/duplicates.jsonl lists them in the order it always did (source order).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from .bitmap import bits_of
from .ids import partition_hash
from .kway import RunWriter, merge_runs

BUCKET_ROWS = 1_000_000      # rows per bucket aimed at (one bucket is sorted in memory)
MAX_BUCKETS = 512            # open bucket files at once
BUFFER_BYTES = 1 << 18
DETAIL = "an earlier row (lower key) has this id"
SCHEMA = pa.schema([("id", pa.string()), ("pos", pa.int64()), ("key", pa.int64()),
                    ("seq", pa.int64())])


class IdBuckets:
    """Pass 2 consumer: every ordered chunk's ids go to their hash bucket's file."""

    def __init__(self, folder: Path, rows: int):
        self.count = int(min(MAX_BUCKETS, max(1, -(-rows // BUCKET_ROWS))))
        self.paths = [Path(folder) / f"ids-{b:04d}.arrows" for b in range(self.count)]
        self._sinks = [pa.BufferedOutputStream(pa.OSFile(str(p), "wb"), BUFFER_BYTES)
                       for p in self.paths]
        self._writers = [ipc.new_stream(s, SCHEMA) for s in self._sinks]

    def __call__(self, start: int, chunk: pa.Table) -> None:
        n = chunk.num_rows
        table = pa.table({"id": chunk.column("id"),
                          "pos": np.arange(start, start + n, dtype=np.int64),
                          "key": chunk.column("key"), "seq": chunk.column("seq")}, schema=SCHEMA)
        bucket = (partition_hash(chunk.column("id")) % np.uint64(self.count)).astype(np.int64)
        order = np.argsort(bucket, kind="stable")
        bounds = np.searchsorted(bucket[order], np.arange(self.count + 1))
        table = table.take(order)
        for b in np.flatnonzero(np.diff(bounds)):
            self._writers[b].write_table(table.slice(bounds[b], bounds[b + 1] - bounds[b]))

    def close(self) -> None:
        for writer, sink in zip(self._writers, self._sinks, strict=True):
            writer.close()
            sink.close()


@dataclass
class Duplicates:
    dropped: np.ndarray          # bitmap (np.packbits order) of dropped positions
    count: int
    runs: list[Path]             # duplicates' (seq, key, id), sorted runs by seq

    def dropped_in(self, start: int, n: int) -> np.ndarray:
        """bool per position start .. start + n - 1: dropped as a duplicate id."""
        return bits_of(self.dropped, start, n)

    def records(self) -> Iterator[dict]:
        """rejects/duplicates.jsonl's records, in source order."""
        for table in merge_runs(self.runs, ("seq",)):
            for key, row_id in zip(table.column("key").to_pylist(),
                                   table.column("id").to_pylist(), strict=True):
                yield {"reason": "duplicate_id", "detail": DETAIL, "key": key, "id": row_id}


def find_duplicates(buckets: IdBuckets, rows: int, folder: Path,
                    on_dropped_keys: Callable[[np.ndarray], None]) -> Duplicates:
    """Per bucket: sort by (id, position); a row whose id equals the previous row's is a
    duplicate. `on_dropped_keys` gets each bucket's dropped keys, sorted."""
    buckets.close()
    dropped = np.zeros((rows + 7) // 8, np.uint8)
    writer = RunWriter(folder, "dups", ("seq",))
    count = 0
    for path in buckets.paths:
        with pa.OSFile(str(path), "rb") as source:
            table = ipc.open_stream(source).read_all()
        path.unlink()
        if table.num_rows < 2:
            continue
        table = table.take(pc.sort_indices(table, [("id", "ascending"), ("pos", "ascending")]))
        ids = table.column("id").combine_chunks()
        same = np.zeros(table.num_rows, bool)
        same[1:] = pc.equal(ids.slice(1), ids.slice(0, len(ids) - 1)).to_numpy(zero_copy_only=False)
        if not same.any():
            continue
        dups = table.filter(pa.array(same))
        pos = dups.column("pos").to_numpy()
        np.bitwise_or.at(dropped, pos >> 3, (np.uint8(128) >> (pos & 7)).astype(np.uint8))
        on_dropped_keys(np.sort(dups.column("key").to_numpy()))
        writer.add(dups.select(["seq", "key", "id"]))
        count += dups.num_rows
    return Duplicates(dropped, count, writer.finish())
