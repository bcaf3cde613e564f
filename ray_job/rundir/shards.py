"""Arrow IPC shard files: one per encoded block, written to a temp name and renamed into place,
so a shard that exists is complete. The name is derived from the rows it holds, so a retried
block rewrites the same file instead of adding a second copy."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from ray.data.datasource import Datasink

from ..errors import DataError
from .rundir import SHARD_GLOB
from .store import Store

CHECKSUM_KEY = "content_sha1"
QUARANTINE = "corrupt"
SHARD_RE = re.compile(r"^part-(?P<key>[0-9a-f]{16})-(?P<rows>\d+)-(?P<digest>[0-9a-f]{8})\.arrow$")


class CorruptShard(DataError):
    def __init__(self, path: Path, why: str):
        super().__init__(f"shard {path.name} is corrupt ({why})")
        self.path = path
        self.why = why


def shard_name(keys: np.ndarray) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(keys, dtype=np.int64).tobytes()).hexdigest()[:8]
    return f"part-{int(keys.min()):016x}-{len(keys)}-{digest}.arrow"


def rows_in_name(name: str) -> int:
    match = SHARD_RE.match(name)
    return int(match.group("rows")) if match else 0


def content_digest(table: pa.Table) -> str:
    """Checksum of what a shard means: its keys, ids and embeddings."""
    digest = hashlib.sha1(table.column("key").to_numpy().tobytes())
    digest.update("\n".join(table.column("id").to_pylist()).encode())
    digest.update(embedding_matrix(table).tobytes())
    return digest.hexdigest()


def write_shard(directory: Store, table: pa.Table) -> str | None:
    """Write `table` as one complete shard; the embeddings' checksum goes into its metadata."""
    if table.num_rows == 0:
        return None
    name = shard_name(table.column("key").to_numpy())
    table = table.combine_chunks().replace_schema_metadata(
        {CHECKSUM_KEY: content_digest(table)})
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    directory.write_bytes(name, sink.getvalue())
    return name


class ShardSink(Datasink):
    """Ray Datasink: each block becomes one complete shard file in `url` (a local directory
    or an object-store prefix that every node can reach)."""

    def __init__(self, url: str):
        self.url = url

    def on_write_start(self, schema=None) -> None:
        Store(self.url).makedirs()

    def write(self, blocks: Iterable, ctx) -> list[tuple[str, int]]:
        written = []
        store = Store(self.url)
        for block in blocks:
            table = _as_table(block)
            name = write_shard(store, table)
            if name:
                written.append((name, table.num_rows))
        return written


def _as_table(block) -> pa.Table:
    if isinstance(block, pa.Table):
        return block
    from ray.data.block import BlockAccessor

    return BlockAccessor.for_block(block).to_arrow()


def list_shards(directory: Path) -> list[Path]:
    return sorted(directory.glob(SHARD_GLOB)) if directory.is_dir() else []


def read_shard(path: Path, columns: list[str] | None = None) -> pa.Table:
    try:
        # memory-mapped and zero-copy: columns that are not used are never read from disk
        table = ipc.open_file(pa.memory_map(str(path), "r")).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorruptShard(path, str(exc).splitlines()[0] if str(exc) else "unreadable") from None
    expected = rows_in_name(path.name)
    if expected and table.num_rows != expected:
        raise CorruptShard(path, f"{table.num_rows} rows, its name says {expected}")
    return table.select(columns) if columns else table


def read_verified_embeddings(path: Path) -> np.ndarray:
    """The shard's embeddings, after checking the shard against the checksum written with it."""
    table = read_shard(path)
    expected = (table.schema.metadata or {}).get(CHECKSUM_KEY.encode(), b"").decode()
    try:
        ok = content_digest(table) == expected
    except (pa.ArrowInvalid, UnicodeDecodeError):
        ok = False
    if not ok:
        raise CorruptShard(path, "checksum mismatch")
    return embedding_matrix(table)


def quarantine(path: Path) -> Path:
    """Move a bad shard aside (shards/corrupt/) so that the next run recomputes its rows."""
    target = path.parent / QUARANTINE / path.name
    target.parent.mkdir(exist_ok=True)
    os.replace(path, target)
    return target


def quarantine_in(store: Store, name: str) -> None:
    """The same move in the run's store (when the store is not this local directory)."""
    if store.exists(name):
        store.move(name, f"{QUARANTINE}/{name}")


def quarantine_unreadable(directory: Path) -> list[str]:
    """Structural check of every shard (footer, row count); bad ones are moved aside.
    Temp files left by a killed writer are removed."""
    for stale in directory.glob(".part-*.tmp"):
        stale.unlink(missing_ok=True)
    moved = []
    for path in list_shards(directory):
        try:
            read_shard(path, ["key"])
        except CorruptShard:
            quarantine(path)
            moved.append(path.name)
    return moved


def iter_shards(directory: Path, columns: list[str] | None = None) -> Iterator[tuple[Path, pa.Table]]:
    for path in list_shards(directory):
        yield path, read_shard(path, columns)


def done_keys(directory: Path) -> np.ndarray:
    """Sorted unique keys of every complete shard (what a resumed run skips)."""
    parts = [t.column("key").to_numpy() for _, t in iter_shards(directory, ["key"])]
    if not parts:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate(parts))


def embedding_matrix(table: pa.Table) -> np.ndarray:
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
