"""The shard format: one Arrow IPC file per encoded block (key, id, text hash, embedding,
token counts), its checksum and what ran it (device, precision) in the schema metadata.

A shard's name is derived from the keys it holds, so a retried block rewrites the same file
instead of adding a second copy. Pure functions over tables and bytes: where shards live is
RunDir's business (`rundir.py`); the pipeline's last Ray stage writes them (`sink.py`).
"""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import DataError
from ..storage.failures import StorageError

CHECKSUM_KEY = "content_sha1"
RAN_WITH = ("device", "precision")      # per-batch columns from the encoder -> metadata
CONFIG_HASH_KEY = "config_hash"         # of the run that wrote the shard (sink.py)
SHARD_RE = re.compile(r"^part-(?P<key>[0-9a-f]{16})-(?P<rows>\d+)-(?P<digest>[0-9a-f]{8})\.arrow$")


class CorruptShard(DataError):
    def __init__(self, name: str, why: str):
        super().__init__(f"shard {name} is corrupt ({why})")
        self.name = name
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


def ran_with(table: pa.Table) -> dict[str, str]:
    """The device and precision columns of an encoder batch, as one value each."""
    found = {}
    for name in RAN_WITH:
        if name in table.column_names:
            values = set(table.column(name).to_pylist())
            if len(values) > 1:
                raise ValueError(f"one shard ran with several {name}s: {sorted(values)}")
            found[name] = values.pop() if values else ""
    return found


def encode_shard(table: pa.Table, config_hash: str | None = None) -> tuple[str, pa.Buffer] | None:
    """The shard file for `table`: (name, bytes); None for an empty table. `config_hash`: of
    the run writing it, kept in its metadata."""
    if table.num_rows == 0:
        return None
    meta = ran_with(table)
    if config_hash:
        meta[CONFIG_HASH_KEY] = config_hash
    table = table.drop_columns([c for c in RAN_WITH if c in table.column_names])
    name = shard_name(table.column("key").to_numpy())
    table = table.combine_chunks().replace_schema_metadata(
        {CHECKSUM_KEY: content_digest(table), **meta})
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return name, sink.getvalue()


def decode_shard(source, name: str, columns: list[str] | None = None) -> pa.Table:
    """Read a shard from `source` (a memory map or a random-access file), only `columns`;
    a file that does not parse or holds another row count than its name says is corrupt."""
    try:
        reader = ipc.open_file(source)
        if columns:
            fields = [reader.schema.get_field_index(c) for c in columns]
            reader = ipc.open_file(source, options=ipc.IpcReadOptions(included_fields=fields))
        table = reader.read_all()
    except StorageError:                # the store failed to answer: not a damaged file
        raise
    except (pa.ArrowInvalid, OSError) as exc:
        raise CorruptShard(name, str(exc).splitlines()[0] if str(exc) else "unreadable") from None
    expected = rows_in_name(name)
    if expected and table.num_rows != expected:
        raise CorruptShard(name, f"{table.num_rows} rows, its name says {expected}")
    return table.select(columns) if columns else table


def verified_embeddings(table: pa.Table, name: str) -> np.ndarray:
    """The embeddings of a whole shard table, after checking it against its checksum."""
    expected = (table.schema.metadata or {}).get(CHECKSUM_KEY.encode(), b"").decode()
    try:
        ok = content_digest(table) == expected
    except (pa.ArrowInvalid, UnicodeDecodeError):
        ok = False
    if not ok:
        raise CorruptShard(name, "checksum mismatch")
    return embedding_matrix(table)


def shard_ran_with(table: pa.Table) -> dict[str, str]:
    """What ran the shard (device, precision) and the config hash of the run that wrote it
    (shards of release 0.1.0 have none)."""
    meta = table.schema.metadata or {}
    return {k: meta[k.encode()].decode() for k in RAN_WITH + (CONFIG_HASH_KEY,)
            if k.encode() in meta}


def embedding_matrix(table: pa.Table) -> np.ndarray:
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
