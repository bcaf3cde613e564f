"""Merge shards into embeddings.h5 in key order, verified, one shard in memory at a time.

Duplicate keys (a block written twice) are dropped; duplicate ids keep the row with the lowest
key and the others go to rejects/duplicates.jsonl. The shards record what ran them (device,
precision): the file records that too, and a run whose shards ran in different precisions is
refused rather than mixed silently. A corrupt shard is moved aside (RunDir.quarantine) and
named in the error, so that re-running the job recomputes exactly its rows.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import h5py
import numpy as np
import pyarrow as pa

from ..errors import DataError
from ..read.previous import previous_embeddings
from ..rundir.layout import H5
from ..rundir.rundir import RunDir
from ..rundir.shards import CorruptShard
from .reconcile import reconcile

INDEX_COLUMNS = ["key", "id", "text_hash", "n_tokens", "n_computed"]
URL_CHUNK = 65536


class VerificationError(DataError):
    """The merged output failed a check; nothing is published."""


@dataclass(frozen=True)
class ShardSource:
    """A shard file: rows, their embeddings and what ran them."""
    run_dir: RunDir
    name: str

    def index_table(self) -> pa.Table:
        return self.run_dir.read_shard(self.name, INDEX_COLUMNS)

    def embeddings(self) -> tuple[np.ndarray, dict]:
        return self.run_dir.shard_embeddings(self.name)


@dataclass(frozen=True)
class ReuseSource:
    """Rows of an incremental run whose embeddings come from the previous embeddings.h5."""
    run_dir: RunDir
    name: str
    previous_h5: str

    def index_table(self) -> pa.Table:
        table = self.run_dir.read_reuse(self.name)
        zeros = pa.array(np.zeros(table.num_rows, np.int32))
        return table.select(["key", "id", "text_hash"]).append_column(
            "n_tokens", zeros).append_column("n_computed", zeros)

    def embeddings(self) -> tuple[np.ndarray, dict]:
        rows = self.run_dir.read_reuse(self.name).column("previous_row").to_numpy()
        return previous_embeddings(self.previous_h5, rows), {}


@dataclass
class RowIndex:
    sources: list
    offsets: np.ndarray     # rows of source s are [offsets[s], offsets[s + 1])
    keys: np.ndarray
    ids: np.ndarray         # bytes
    text_hashes: np.ndarray
    real_tokens: int
    computed_tokens: int


@dataclass(frozen=True)
class Storage:
    dtype: str = "float32"
    compression: str | None = None


@dataclass(frozen=True)
class MergeSpec:
    """What the merged file must be: its attributes, urls, norms, storage."""
    attrs: dict
    url_template: str | None = None
    normalized: bool = False
    previous_h5: str | None = None
    storage: Storage = Storage()
    units: list | None = None           # the read plan's units: reconciled when given


@dataclass
class FinalizeResult:
    count: int
    dim: int
    duplicates: int
    real_tokens: int
    computed_tokens: int
    ran_with: dict           # precision and devices of the shards merged
    reconciliation: dict | None = None


def row_sources(run_dir: RunDir, previous_h5: str | None) -> list:
    sources: list = [ShardSource(run_dir, name) for name in run_dir.shard_names()]
    if previous_h5:
        sources += [ReuseSource(run_dir, name, previous_h5) for name in run_dir.reuse_names()]
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


def finalize(run_dir: RunDir, spec: MergeSpec) -> FinalizeResult:
    """Merge and verify into the run's embeddings.h5; a corrupt shard is quarantined."""
    try:
        return _finalize(run_dir, spec)
    except CorruptShard as exc:
        raise run_dir.quarantine(exc.name, exc.why) from None


def _finalize(run_dir: RunDir, spec: MergeSpec) -> FinalizeResult:
    index = build_index(row_sources(run_dir, spec.previous_h5))
    if not len(index.keys):
        raise VerificationError(f"no embedded rows under {run_dir.url}/shards: nothing to finalize")
    rows, dup_rows = select_rows(index)
    row_rejected = run_dir.row_reject_keys()
    embedded_later = np.intersect1d(row_rejected, index.keys[rows])
    if len(embedded_later):
        run_dir.drop_row_rejects(embedded_later)
        row_rejected = np.setdiff1d(row_rejected, embedded_later)
    totals = None
    if spec.units is not None:
        totals = reconcile(spec.units, index.keys[rows], index.keys[dup_rows],
                           run_dir.unit_reads(), run_dir.unit_reject_counts(), row_rejected)
    run_dir.write_duplicates(_duplicate_records(index, dup_rows))
    with run_dir.result_writer(H5) as tmp:
        dim, ran = _write_h5(tmp, index, rows, spec)
        _verify_h5(tmp, len(rows))
    return FinalizeResult(len(rows), dim, len(dup_rows), index.real_tokens,
                          index.computed_tokens, ran, totals)


def _duplicate_records(index: RowIndex, dup_rows: np.ndarray) -> list[dict]:
    return [{"reason": "duplicate_id", "detail": "an earlier row (lower key) has this id",
             "key": int(index.keys[r]), "id": index.ids[r].decode()} for r in np.sort(dup_rows)]


class RanWith:
    """What ran the merged shards: one precision (else the merge is refused), the devices."""

    def __init__(self):
        self.precisions: dict[str, str] = {}     # precision -> first shard that used it
        self.devices: set[str] = set()

    def add(self, meta: dict, source_name: str) -> None:
        if meta.get("precision"):
            self.precisions.setdefault(meta["precision"], source_name)
        if meta.get("device"):
            self.devices.add(meta["device"])
        if len(self.precisions) > 1:
            found = ", ".join(f"{p} (e.g. {n})" for p, n in self.precisions.items())
            raise VerificationError(f"shards were encoded in different precisions: {found}; "
                                    f"re-run with --fresh and one --precision")

    def record(self) -> dict:
        return {"precision": next(iter(self.precisions), None),
                "devices": sorted(self.devices)}


def _write_h5(path, index: RowIndex, rows: np.ndarray, spec: MergeSpec) -> tuple[int, dict]:
    n = len(rows)
    position = np.full(len(index.keys), -1, dtype=np.int64)
    position[rows] = np.arange(n)
    dim, ran = None, RanWith()
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ids", data=index.ids[rows])
        h5.create_dataset("text_hashes", data=index.text_hashes[rows])
        if spec.url_template:
            _write_urls(h5, index.ids[rows], spec.url_template)
        for s, source in enumerate(index.sources):
            first = index.offsets[s]
            mine = np.arange(first, index.offsets[s + 1])
            pos = position[mine]
            mine, pos = mine[pos >= 0], pos[pos >= 0]
            if not len(mine):
                continue
            emb, meta = source.embeddings()
            ran.add(meta, source.name)
            if dim is None:
                dim = emb.shape[1]
                dset = h5.create_dataset("embeddings", (n, dim), dtype=spec.storage.dtype,
                                         chunks=(min(n, max(1, (1 << 20) // (4 * dim))), dim),
                                         compression=spec.storage.compression)
            sub = emb[mine - first]
            _check_rows(sub, source.name, index.ids[mine], spec.normalized)
            _write_runs(dset, pos, sub)
        attrs = {**spec.attrs, **_ran_attrs(ran.record(), spec.attrs), "count": n, "dim": dim}
        for name, value in attrs.items():
            h5.attrs[name] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
    return dim, ran.record()


def _ran_attrs(ran: dict, attrs: dict) -> dict:
    """The precision that ran (not the one asked for); reused rows keep the old file's."""
    found = {"devices": ",".join(ran["devices"])}
    if ran["precision"]:
        found["precision"] = ran["precision"]
    elif attrs.get("precision") == "auto":
        found["precision"] = "unknown"
    return found


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


def _check_rows(emb: np.ndarray, shard: str, ids: np.ndarray, normalized: bool) -> None:
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise VerificationError(f"non-finite embedding for id {ids[i].decode()!r} in shard {shard}")
    if normalized:
        norms = np.linalg.norm(emb, axis=1)
        off = np.abs(norms - 1.0) > 1e-3
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise VerificationError(f"embedding of id {ids[i].decode()!r} in shard {shard} "
                                    f"has norm {norms[i]:.4f}, expected 1 (normalized model)")


def _verify_h5(path, expected: int) -> None:
    with h5py.File(path, "r") as h5:
        ids = h5["ids"][:]
        if len(ids) != expected or h5["embeddings"].shape[0] != expected:
            raise VerificationError(f"{H5}: {len(ids)} ids, expected {expected}")
        if len(np.unique(ids)) != len(ids):
            raise VerificationError(f"{H5}: ids are not unique")
