"""Incremental runs (`--previous OLD_DIR_OR_H5`): a paper whose id and text hash are unchanged
keeps its old embedding; only new and changed papers are encoded.

The source stage sorts each row into reused / changed / new; reused rows are listed in
OUT/reuse/unit-*.arrow (key, id, text hash, row in the old file) and the finalizer copies their
vectors from the old embeddings.h5.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import UserError
from .remote_files import is_url
from ..rundir.rundir import default_staging
from ..rundir.store import Store

# The old file must have been made with the same of these (resolved) settings.
COMPAT_ATTRS = ("model", "adapter", "backend", "pooling", "normalized", "precision",
                "text_template", "max_seq_length")
REUSE_SCHEMA = pa.schema([("key", pa.int64()), ("id", pa.string()),
                          ("text_hash", pa.uint64()), ("previous_row", pa.int64())])


def text_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def id_hashes(ids) -> np.ndarray:
    return np.fromiter((text_hash(i.decode() if isinstance(i, bytes) else i) for i in ids),
                       dtype=np.uint64, count=len(ids))


@dataclass
class Previous:
    """Sorted lookup over an old run: id hash -> (text hash, row)."""
    h5_path: str
    id_hash: np.ndarray
    text_hash: np.ndarray
    row: np.ndarray
    count: int

    def classify(self, row_id: str, t_hash: int) -> tuple[str, int]:
        h = np.uint64(text_hash(row_id))
        i = int(np.searchsorted(self.id_hash, h))
        if i >= len(self.id_hash) or self.id_hash[i] != h:
            return "new", -1
        if self.text_hash[i] != np.uint64(t_hash):
            return "changed", -1
        return "reused", int(self.row[i])


def previous_h5(path: str, cache: Path | None = None) -> Path:
    """The old embeddings.h5 as a local file (a run directory's or the file itself; a URL
    (s3://..., hf://...) is fetched once into `cache`)."""
    if is_url(path):
        return _fetch_previous(path, cache or default_staging() / "previous")
    p = Path(path).expanduser()
    p = p / "embeddings.h5" if p.is_dir() else p
    if not p.is_file():
        raise UserError(f"--previous {path}: no embeddings.h5 there")
    return p.resolve()


def _fetch_previous(url: str, cache: Path) -> Path:
    parent, name = url.rstrip("/").rsplit("/", 1)
    store, name = (Store.at(parent), name) if name.endswith(".h5") else (Store.at(url), "embeddings.h5")
    size = store.sizes(name).get(name)
    if size is None:
        raise UserError(f"--previous {url}: no embeddings.h5 there")
    local = cache / hashlib.sha1(store.path(name).encode()).hexdigest()[:16] / name
    if not (local.is_file() and local.stat().st_size == size):
        store.get(name, local)
    return local


def load_previous(path: str, expected: dict) -> Previous:
    h5_path = previous_h5(path)
    with h5py.File(h5_path, "r") as h5:
        if "text_hashes" not in h5:
            raise UserError(f"--previous {path}: made without text hashes; cannot reuse it")
        attrs = {k: h5.attrs.get(k) for k in COMPAT_ATTRS}
        differ = [f"{k}: {_plain(attrs[k])!r} -> {expected[k]!r}" for k in COMPAT_ATTRS
                  if _plain(attrs[k]) != expected[k]]
        if differ:
            raise UserError(f"--previous {path} was made with other settings "
                            f"({'; '.join(differ)}); its embeddings cannot be reused")
        ids, t_hashes = h5["ids"][:], h5["text_hashes"][:]
    hashes = id_hashes(ids)
    order = np.argsort(hashes, kind="stable")
    return Previous(str(h5_path), hashes[order], t_hashes[order], order.astype(np.int64), len(ids))


def _plain(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    return value.decode() if isinstance(value, bytes) else value


def write_reuse(directory: Store, unit_name: str, rows: dict, counts: dict) -> None:
    """The reused rows of one unit, then its reused/new/changed counts (each file whole)."""
    table = pa.table({"key": pa.array(rows["key"], pa.int64()), "id": pa.array(rows["id"], pa.string()),
                      "text_hash": pa.array(rows["text_hash"], pa.uint64()),
                      "previous_row": pa.array(rows["previous_row"], pa.int64())}, schema=REUSE_SCHEMA)
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, REUSE_SCHEMA) as writer:
        writer.write_table(table)
    directory.write_bytes(f"unit-{unit_name}.arrow", sink.getvalue())
    directory.write_text(f"unit-{unit_name}.json", json.dumps(counts))


def reuse_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("unit-*.arrow")) if directory.is_dir() else []


def read_reuse(path: Path) -> pa.Table:
    return ipc.open_file(pa.memory_map(str(path), "r")).read_all()


def reuse_counts(directory: Path) -> dict[str, int]:
    totals = {"reused": 0, "new": 0, "changed": 0}
    for path in sorted(directory.glob("unit-*.json")) if directory.is_dir() else []:
        for k, v in json.loads(path.read_text()).items():
            totals[k] += v
    return totals


def previous_embeddings(h5_path: str, rows: np.ndarray) -> np.ndarray:
    """Rows of the old file's embeddings, in the order asked (h5py wants increasing indices)."""
    unique, inverse = np.unique(rows, return_inverse=True)
    with h5py.File(h5_path, "r") as h5:
        picked = h5["embeddings"][unique]
    return picked[inverse]


def incremental_counts(reuse_dir: Path, previous: Path) -> dict[str, int]:
    """reused / new / changed rows of this run, and how many old papers are gone."""
    counts = reuse_counts(reuse_dir)
    with h5py.File(previous, "r") as h5:
        old = int(h5.attrs["count"])
    return {**counts, "removed": old - counts["reused"] - counts["changed"],
            "previous": str(previous)}
