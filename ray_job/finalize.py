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

from .errors import DataError
from .rejects import write_rejects
from .shards import CorruptShard, list_shards, quarantine, read_shard, read_verified_embeddings

INDEX_COLUMNS = ["key", "id", "n_tokens", "n_computed"]
URL_CHUNK = 65536


class VerificationError(DataError):
    """The merged output failed a check; nothing is published."""


@dataclass
class ShardIndex:
    paths: list[Path]
    keys: np.ndarray        # all rows, shard by shard
    ids: np.ndarray         # bytes, same order
    shard_of: np.ndarray
    row_of: np.ndarray
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


def build_index(shards_dir: Path) -> ShardIndex:
    paths = list_shards(shards_dir)
    keys, ids, shard_of, row_of = [], [], [], []
    real = computed = 0
    for i, path in enumerate(paths):
        table = read_shard(path, INDEX_COLUMNS)
        keys.append(table.column("key").to_numpy())
        ids.append(np.array([s.encode() for s in table.column("id").to_pylist()], dtype=object))
        shard_of.append(np.full(table.num_rows, i, dtype=np.int32))
        row_of.append(np.arange(table.num_rows, dtype=np.int32))
        real += int(table.column("n_tokens").to_numpy().sum())
        computed += int(table.column("n_computed").to_numpy().sum())
    cat = (lambda parts, dtype: np.concatenate(parts) if parts else np.empty(0, dtype))
    id_arr = cat(ids, object)
    width = max((len(s) for s in id_arr), default=1)
    return ShardIndex(paths, cat(keys, np.int64), id_arr.astype(f"S{width}"),
                      cat(shard_of, np.int32), cat(row_of, np.int32), real, computed)


def select_rows(index: ShardIndex) -> tuple[np.ndarray, np.ndarray]:
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


def finalize(out_dir: Path, attrs: dict, url_template: str | None, normalized: bool) -> FinalizeResult:
    """Merge and verify; a corrupt shard is moved to shards/corrupt/ and named in the error,
    so that re-running the job recomputes exactly its rows."""
    try:
        return _finalize(out_dir, attrs, url_template, normalized)
    except CorruptShard as exc:
        moved = quarantine(exc.path) if exc.path.exists() else exc.path
        raise CorruptShard(exc.path, f"{exc.why}; moved to {moved.parent.name}/, re-run the job "
                                     f"to recompute its rows") from None


def _finalize(out_dir: Path, attrs: dict, url_template: str | None, normalized: bool) -> FinalizeResult:
    index = build_index(out_dir / "shards")
    if not len(index.keys):
        raise VerificationError(f"no embedded rows under {out_dir / 'shards'}: nothing to finalize")
    rows, dup_rows = select_rows(index)
    write_rejects(out_dir / "rejects" / "duplicates.jsonl", _duplicate_records(index, dup_rows))
    final = out_dir / "embeddings.h5"
    tmp = out_dir / ".embeddings.h5.tmp"
    dim = _write_h5(tmp, index, rows, attrs, url_template, normalized)
    _verify_h5(tmp, len(rows))
    os.replace(tmp, final)
    return FinalizeResult(final, len(rows), dim, len(dup_rows), index.real_tokens,
                          index.computed_tokens)


def _duplicate_records(index: ShardIndex, dup_rows: np.ndarray) -> list[dict]:
    return [{"reason": "duplicate_id", "detail": "an earlier row (lower key) has this id",
             "key": int(index.keys[r]), "id": index.ids[r].decode()} for r in np.sort(dup_rows)]


def _write_h5(path: Path, index: ShardIndex, rows: np.ndarray, attrs: dict,
              url_template: str | None, normalized: bool) -> int:
    n = len(rows)
    position = np.full(len(index.keys), -1, dtype=np.int64)
    position[rows] = np.arange(n)
    dim = None
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ids", data=index.ids[rows])
        if url_template:
            _write_urls(h5, index.ids[rows], url_template)
        for s, shard_path in enumerate(index.paths):
            mine = np.flatnonzero(index.shard_of == s)
            pos = position[mine]
            mine, pos = mine[pos >= 0], pos[pos >= 0]
            if not len(mine):
                continue
            emb = read_verified_embeddings(shard_path)
            if dim is None:
                dim = emb.shape[1]
                dset = h5.create_dataset("embeddings", (n, dim), dtype="f4",
                                         chunks=(min(n, max(1, (1 << 20) // (4 * dim))), dim))
            sub = emb[index.row_of[mine]]
            _check_rows(sub, shard_path, index.ids[mine], normalized)
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
