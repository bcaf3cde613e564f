"""Incremental runs (`--previous OLD_DIR_OR_H5`): a paper whose id and text hash are unchanged
keeps its old embedding; only new and changed papers are encoded.

The read stage sorts each row into reused / changed / new; reused rows are listed in the run's
reuse lists (RunDir.write_reuse: key, id, text hash, row in the old file) and the finalizer
copies their vectors from the old embeddings.h5.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import UserError
from .remote_files import is_url

# The old file must have been made with the same of these (resolved) settings.
COMPAT_ATTRS = ("model", "model_identity", "adapter", "backend", "pooling", "normalized",
                "precision", "text_template", "max_seq_length")


def text_hash(text: str) -> int:
    """64-bit hash of a text's UTF-8 bytes. Never raises: "surrogatepass" gives the very bytes
    of strict UTF-8 for every valid string (so hashes are unchanged) and also encodes lone
    surrogates, which the read stage rejects as bad_text before they get here."""
    data = text.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


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


def previous_h5(path: str) -> Path:
    """The old embeddings.h5 as a local file: `path` is a run directory or the file itself,
    local or a URL (s3://..., hf://...; fetched once into this user's private cache)."""
    from ..rundir.layout import H5
    from ..rundir.rundir import RunDir

    parent, name = (path.rstrip("/").rsplit("/", 1) if path.rstrip("/").endswith(".h5")
                    else (path, H5))
    run_dir = RunDir.at(parent if is_url(path) else Path(parent).expanduser())
    if not run_dir.has_result(name):
        raise UserError(f"--previous {path}: no embeddings.h5 there")
    return run_dir.local_result(name)


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


def previous_embeddings(h5_path: str, rows: np.ndarray) -> np.ndarray:
    """Rows of the old file's embeddings, in the order asked (h5py wants increasing indices)."""
    unique, inverse = np.unique(rows, return_inverse=True)
    with h5py.File(h5_path, "r") as h5:
        picked = h5["embeddings"][unique]
    return picked[inverse]


def incremental_counts(counts: dict[str, int], previous: Path) -> dict[str, int]:
    """reused / new / changed rows of this run (from its reuse lists), and how many old
    papers are gone."""
    with h5py.File(previous, "r") as h5:
        old = int(h5.attrs["count"])
    return {**counts, "removed": old - counts["reused"] - counts["changed"],
            "previous": str(previous)}
