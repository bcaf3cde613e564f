"""Merge shards into OUT/embeddings.h5 in key order, verified, one shard in memory at a time.

Duplicate keys (a block written twice) are dropped; duplicate ids keep the row with the lowest
key and the others go to rejects/duplicates.jsonl.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa

from ..errors import DataError
from ..rundir.rejects import write_rejects
from ..read.previous import previous_embeddings, read_reuse, reuse_files
from ..rundir.store import Store
from ..rundir.shards import CorruptShard, list_shards, quarantine, read_shard, read_verified_embeddings

INDEX_COLUMNS = ["key", "id", "text_hash", "n_tokens", "n_computed"]
URL_CHUNK = 65536


class VerificationError(DataError):
    """The merged output failed a check; nothing is published."""


@dataclass(frozen=True)
class ShardSource:
    """A shard file: rows and their embeddings."""
    path: Path

    def index_table(self) -> pa.Table:
        return read_shard(self.path, INDEX_COLUMNS)

    def embeddings(self) -> np.ndarray:
        return read_verified_embeddings(self.path)


@dataclass(frozen=True)
class ReuseSource:
    """Rows of an incremental run whose embeddings come from the previous embeddings.h5."""
    path: Path
    previous_h5: str

    def index_table(self) -> pa.Table:
        table = read_reuse(self.path)
        zeros = pa.array(np.zeros(table.num_rows, np.int32))
        return table.select(["key", "id", "text_hash"]).append_column(
            "n_tokens", zeros).append_column("n_computed", zeros)

    def embeddings(self) -> np.ndarray:
        rows = read_reuse(self.path).column("previous_row").to_numpy()
        return previous_embeddings(self.previous_h5, rows)


@dataclass
class RowIndex:
    sources: list
    offsets: np.ndarray     # rows of source s are [offsets[s], offsets[s + 1])
    keys: np.ndarray
    ids: np.ndarray         # bytes
    text_hashes: np.ndarray
    real_tokens: int
    computed_tokens: int


@dataclass
class FinalizeResult:
    path: Path
    count: int
    dim: int
    duplicates: int
    real_tokens: int
    computed_tokens: int


def row_sources(out_dir: Path, previous_h5: str | None) -> list:
    sources: list = [ShardSource(p) for p in list_shards(out_dir / "shards")]
    if previous_h5:
        sources += [ReuseSource(p, previous_h5) for p in reuse_files(out_dir / "reuse")]
    return sources


def build_index(sources: list) -> RowIndex:
    keys, ids, hashes, sizes = [], [], [], [0]
    real = computed = 0
    for source in sources:
        table = source.index_table()
        keys.append(table.column("key").to_numpy())
        ids.append(np.array([s.encode() for s in table.column("id").to_pylist()], dtype=object))
        hashes.append(table.column("text_hash").to_numpy())
        sizes.append(table.num_rows)
        real += int(table.column("n_tokens").to_numpy().sum())
        computed += int(table.column("n_computed").to_numpy().sum())
    cat = (lambda parts, dtype: np.concatenate(parts) if parts else np.empty(0, dtype))
    id_arr = cat(ids, object)
    width = max((len(s) for s in id_arr), default=1)
    return RowIndex(sources, np.cumsum(sizes), cat(keys, np.int64), id_arr.astype(f"S{width}"),
                    cat(hashes, np.uint64), real, computed)


def select_rows(index: RowIndex) -> tuple[np.ndarray, np.ndarray]:
    """Rows to keep, in output order, and the rows rejected as duplicate ids."""
    order = np.argsort(index.keys, kind="stable")
    sorted_keys = index.keys[order]
    first_of_key = np.ones(len(order), dtype=bool)
    first_of_key[1:] = sorted_keys[1:] != sorted_keys[:-1]
    order = order[first_of_key]
    _, first = np.unique(index.ids[order], return_index=True)
    keep = np.zeros(len(order), dtype=bool)
    keep[first] = True
    return order[keep], order[~keep]


@dataclass(frozen=True)
class Storage:
    dtype: str = "float32"
    compression: str | None = None


def finalize(out_dir: Path, attrs: dict, url_template: str | None, normalized: bool,
             previous_h5: str | None = None, storage: Storage = Storage()) -> FinalizeResult:
    """Merge and verify; a corrupt shard is moved to shards/corrupt/ and named in the error,
    so that re-running the job recomputes exactly its rows."""
    try:
        return _finalize(out_dir, attrs, url_template, normalized, previous_h5, storage)
    except CorruptShard as exc:
        moved = quarantine(exc.path) if exc.path.exists() else exc.path
        raise CorruptShard(exc.path, f"{exc.why}; moved to {moved.parent.name}/, re-run the job "
                                     f"to recompute its rows") from None


def _finalize(out_dir: Path, attrs: dict, url_template: str | None, normalized: bool,
              previous_h5: str | None, storage: Storage) -> FinalizeResult:
    index = build_index(row_sources(out_dir, previous_h5))
    if not len(index.keys):
        raise VerificationError(f"no embedded rows under {out_dir / 'shards'}: nothing to finalize")
    rows, dup_rows = select_rows(index)
    write_rejects(Store.at(out_dir / "rejects"), "duplicates.jsonl",
                  _duplicate_records(index, dup_rows))
    final = out_dir / "embeddings.h5"
    tmp = out_dir / ".embeddings.h5.tmp"
    dim = _write_h5(tmp, index, rows, attrs, url_template, normalized, storage)
    _verify_h5(tmp, len(rows))
    os.replace(tmp, final)
    return FinalizeResult(final, len(rows), dim, len(dup_rows), index.real_tokens,
                          index.computed_tokens)


def _duplicate_records(index: RowIndex, dup_rows: np.ndarray) -> list[dict]:
    return [{"reason": "duplicate_id", "detail": "an earlier row (lower key) has this id",
             "key": int(index.keys[r]), "id": index.ids[r].decode()} for r in np.sort(dup_rows)]


def _write_h5(path: Path, index: RowIndex, rows: np.ndarray, attrs: dict,
              url_template: str | None, normalized: bool, storage: Storage) -> int:
    n = len(rows)
    position = np.full(len(index.keys), -1, dtype=np.int64)
    position[rows] = np.arange(n)
    dim = None
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ids", data=index.ids[rows])
        h5.create_dataset("text_hashes", data=index.text_hashes[rows])
        if url_template:
            _write_urls(h5, index.ids[rows], url_template)
        for s, source in enumerate(index.sources):
            first = index.offsets[s]
            mine = np.arange(first, index.offsets[s + 1])
            pos = position[mine]
            mine, pos = mine[pos >= 0], pos[pos >= 0]
            if not len(mine):
                continue
            emb = source.embeddings()
            if dim is None:
                dim = emb.shape[1]
                dset = h5.create_dataset("embeddings", (n, dim), dtype=storage.dtype,
                                         chunks=(min(n, max(1, (1 << 20) // (4 * dim))), dim),
                                         compression=storage.compression)
            sub = emb[mine - first]
            _check_rows(sub, source.path, index.ids[mine], normalized)
            _write_runs(dset, pos, sub)
        for name, value in {**attrs, "count": n, "dim": dim}.items():
            h5.attrs[name] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
    return dim


def _write_urls(h5: h5py.File, ids: np.ndarray, template: str) -> None:
    width = len(template.format(id="").encode()) + ids.dtype.itemsize
    dset = h5.create_dataset("urls", (len(ids),), dtype=f"S{width}")
    for start in range(0, len(ids), URL_CHUNK):
        chunk = ids[start:start + URL_CHUNK]
        dset[start:start + len(chunk)] = [template.format(id=i.decode()).encode() for i in chunk]


def _write_runs(dset, positions: np.ndarray, rows: np.ndarray) -> None:
    """Write rows to increasing positions, one slice per contiguous run."""
    order = np.argsort(positions)
    positions, rows = positions[order], rows[order]
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(positions)]):
        dset[positions[lo]:positions[hi - 1] + 1] = rows[lo:hi]


def _check_rows(emb: np.ndarray, shard: Path, ids: np.ndarray, normalized: bool) -> None:
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise VerificationError(f"non-finite embedding for id {ids[i].decode()!r} in shard {shard.name}")
    if normalized:
        norms = np.linalg.norm(emb, axis=1)
        off = np.abs(norms - 1.0) > 1e-3
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise VerificationError(f"embedding of id {ids[i].decode()!r} in shard {shard.name} "
                                    f"has norm {norms[i]:.4f}, expected 1 (normalized model)")


def _verify_h5(path: Path, expected: int) -> None:
    with h5py.File(path, "r") as h5:
        ids = h5["ids"][:]
        if len(ids) != expected or h5["embeddings"].shape[0] != expected:
            raise VerificationError(f"{path.name}: {len(ids)} ids, expected {expected}")
        if len(np.unique(ids)) != len(ids):
            raise VerificationError(f"{path.name}: ids are not unique")
