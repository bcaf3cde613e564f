"""Arrow IPC shard files: one per encoded block, written to a temp name and renamed into place,
so a shard that exists is complete. The name is derived from the rows it holds, so a retried
block rewrites the same file instead of adding a second copy."""
from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from ray.data.datasource import Datasink

from .errors import DataError

SHARD_GLOB = "part-*.arrow"
SHARD_RE = re.compile(r"^part-(?P<key>[0-9a-f]{16})-(?P<rows>\d+)-(?P<digest>[0-9a-f]{8})\.arrow$")


class CorruptShard(DataError):
    def __init__(self, path: Path, why: str):
        super().__init__(f"shard {path.name} is unreadable ({why}); delete it and re-run to "
                         f"recompute its rows")
        self.path = path


def shard_name(keys: np.ndarray) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(keys, dtype=np.int64).tobytes()).hexdigest()[:8]
    return f"part-{int(keys.min()):016x}-{len(keys)}-{digest}.arrow"


def rows_in_name(name: str) -> int:
    match = SHARD_RE.match(name)
    return int(match.group("rows")) if match else 0


def write_shard(directory: Path, table: pa.Table) -> str | None:
    if table.num_rows == 0:
        return None
    keys = table.column("key").to_numpy()
    name = shard_name(keys)
    tmp = directory / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    with ipc.new_file(str(tmp), table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, directory / name)
    return name


class ShardSink(Datasink):
    """Ray Datasink: each block becomes one complete shard file."""

    def __init__(self, directory: str):
        self.directory = directory

    def on_write_start(self, schema=None) -> None:
        Path(self.directory).mkdir(parents=True, exist_ok=True)

    def write(self, blocks: Iterable, ctx) -> list[tuple[str, int]]:
        written = []
        for block in blocks:
            table = _as_table(block)
            name = write_shard(Path(self.directory), table)
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
    return column.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
