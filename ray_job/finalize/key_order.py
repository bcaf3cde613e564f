"""The row index of a merge, on local scratch: every source's index columns read once and
spilled as sorted runs (pass 1), then merged into one file in key order with the copies of a
key dropped (pass 2). Rows are named by `seq`, their place in the sources' concatenation
(source s holds seq offsets[s] .. offsets[s+1]-1): ordering by (key, seq) is the old stable
argsort over that concatenation, so the first source of a duplicated key wins as before.

Nothing is assumed about how keys lie in the shards: a shard is one encoder batch, which Ray
Data assembles from whichever upstream blocks arrive (no preserve_order), so its keys need not
be sorted (they are sorted here, per source) and its key range can interleave with other
shards' ranges without any duplicate; a block written twice (a retried task whose batch was
cut differently) gives the same keys in two shards. Both merge correctly."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .ids import max_byte_length
from .kway import RunWriter, merge_runs, read_batches

ORDER = ("key", "seq")
CHUNK_ROWS = 16_384           # rows per chunk of the ordered file (= per h5 write)


@dataclass
class Scan:
    """What pass 1 learned: the sorted runs and the totals over all rows read."""
    runs: list[Path]
    offsets: np.ndarray           # int64, len(sources) + 1
    id_width: int                 # longest id in bytes, over every row read
    real_tokens: int
    computed_tokens: int

    @property
    def rows(self) -> int:
        return int(self.offsets[-1])


def scan_sources(sources: list, folder: Path) -> Scan:
    """Pass 1: each source's index columns, once; sorted runs of (key, seq, id, text_hash,
    n_tokens)."""
    writer = RunWriter(folder, "index", ORDER)
    sizes, width, real, computed = [0], 0, 0, 0
    for source in sources:
        table = source.index_table()
        n = table.num_rows
        keys = table.column("key").to_numpy()
        seq = np.arange(sizes[-1], sizes[-1] + n, dtype=np.int64)
        real += int(table.column("n_tokens").to_numpy().sum())
        computed += int(table.column("n_computed").to_numpy().sum())
        width = max(width, max_byte_length(table.column("id")))
        order = np.argsort(keys, kind="stable")          # take() copies: no shard map kept
        writer.add(pa.table({"key": keys[order], "seq": seq[order],
                             "id": table.column("id").take(order),
                             "text_hash": table.column("text_hash").take(order),
                             "n_tokens": table.column("n_tokens").take(order)}))
        sizes.append(sizes[-1] + n)
        del table
    return Scan(writer.finish(), np.array(sizes, np.int64), max(width, 1), real, computed)


@dataclass
class Ordered:
    """Pass 2's result: one row per key, in key order, in `path` (batches of CHUNK_ROWS)."""
    path: Path
    rows: int

    def chunks(self) -> Iterator[tuple[int, pa.RecordBatch]]:
        """(position of the batch's first row, batch) in order."""
        start = 0
        for batch in read_batches(self.path):
            yield start, batch
            start += batch.num_rows


def order_rows(scan: Scan, path: Path,
               consumers: list[Callable[[int, pa.Table], None]]) -> Ordered:
    """Pass 2: merge the runs in (key, seq) order, keep the first row of every key, write
    them to `path`; each consumer sees every written chunk as (first position, table)."""
    import pyarrow.ipc as ipc

    schema = pa.schema([("key", pa.int64()), ("seq", pa.int64()), ("id", pa.string()),
                        ("text_hash", pa.uint64()), ("n_tokens", pa.int32())])
    position = 0
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, schema) as writer:
        for chunk in rechunk(_first_of_each_key(merge_runs(scan.runs, ORDER), schema),
                             CHUNK_ROWS):
            writer.write_table(chunk)
            for consume in consumers:
                consume(position, chunk)
            position += chunk.num_rows
    for run in scan.runs:
        run.unlink(missing_ok=True)
    return Ordered(path, position)


def _first_of_each_key(tables: Iterator[pa.Table], schema: pa.Schema) -> Iterator[pa.Table]:
    last_key = None
    for table in tables:
        keys = table.column("key").to_numpy()
        if not len(keys):
            continue
        first = np.ones(len(keys), bool)
        first[1:] = keys[1:] != keys[:-1]
        first[0] = last_key is None or keys[0] != last_key
        last_key = int(keys[-1])
        yield table.filter(pa.array(first)).cast(schema)


def rechunk(tables: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows in tables of exactly `rows` rows (the last may be shorter), each one
    contiguous (combined)."""
    parts, held = [], 0
    for table in tables:
        parts.append(table)
        held += table.num_rows
        while held >= rows:
            whole = pa.concat_tables(parts)
            yield whole.slice(0, rows).combine_chunks()
            parts, held = [whole.slice(rows)], held - rows
    if held:
        yield pa.concat_tables(parts).combine_chunks()
