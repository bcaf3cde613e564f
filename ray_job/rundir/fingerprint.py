"""What an embeddings.h5 holds, in one hash: an index built from it stays current while the
hash is the same.

Hashed, one chunk at a time: the attributes (model, config hash, count, ...), the shape and
dtype of the vectors, and the ids, text hashes and vectors themselves. That reads the whole
file (seconds per GB); `stat_key` lets a caller skip it for a local file that has not been
replaced since (finalize always writes a new file and renames it into place).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy as np

CHUNK_BYTES = 64 << 20


def h5_fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with h5py.File(path, "r") as h5:
        for name in sorted(h5.attrs):
            digest.update(f"{name}={h5.attrs[name]!r}\n".encode())
        for name in ("ids", "text_hashes", "embeddings"):
            if name in h5:
                _hash_dataset(digest, h5[name])
    return digest.hexdigest()[:32]


def _hash_dataset(digest, dset) -> None:
    digest.update(f"{dset.name} {dset.shape} {dset.dtype}\n".encode())
    row_bytes = max(1, dset.dtype.itemsize * int(np.prod(dset.shape[1:], dtype=np.int64)))
    step = max(1, CHUNK_BYTES // row_bytes)
    for start in range(0, dset.shape[0], step):
        digest.update(np.ascontiguousarray(dset[start:start + step]).tobytes())


def stat_key(path: Path) -> str:
    """Changes whenever the file is replaced or rewritten (inode, size, modification time)."""
    st = os.stat(path)
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def local_stat(h5: Path, remote: bool) -> str | None:
    """A remote run's local copy is fetched anew each time: its status says nothing."""
    return None if remote else stat_key(h5)


def made_from(record: dict, h5: Path, remote: bool) -> bool:
    """Whether `record` (a map.json, ...) was made from exactly `h5`'s vectors: the local file
    not replaced since (its status), or the same fingerprint (reads the file)."""
    stat = local_stat(h5, remote)
    if stat is not None and record.get("h5_stat") == stat:
        return True
    return record.get("fingerprint") == h5_fingerprint(h5)
