"""Writing embeddings.h5 chunk by chunk (pass 3): ids, text hashes, urls and vectors of the
kept rows, checked (finite, unit norm for normalised models) before they are written, and
what ran them. Then a read-back check of the file."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from ..rundir.layout import H5
from ..rundir.shards import CONFIG_HASH_KEY, CorruptShard
from ..storage.space import require_space
from .ids import ID_WIDTH_LIMIT, IdDigest, as_text, fixed_width, holding_nul

VECTOR_CHUNK_BYTES = 1 << 20


class VerificationError(DataError):
    """The merged output failed a check; nothing is published."""


class RanWith:
    """What ran the merged shards: one precision (else the merge is refused), the devices.
    A shard stamped with another config hash than the run's (`config_hash`: a late write of
    a driver that lost the lease to a `--fresh` run, see rundir/fence.py) is corrupt here."""

    def __init__(self, config_hash: str | None = None):
        self.config_hash = config_hash
        self.precisions: dict[str, str] = {}     # precision -> first shard that used it
        self.devices: set[str] = set()

    def add(self, meta: dict, source_name: str) -> None:
        stamp = meta.get(CONFIG_HASH_KEY)
        if stamp and self.config_hash and stamp != self.config_hash:
            raise CorruptShard(source_name, f"written by a run with other settings (config "
                                            f"hash {stamp}, this run's {self.config_hash})")
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


def ran_attrs(ran: dict, attrs: dict) -> dict:
    """The precision that ran (not the one asked for); reused rows keep the old file's. With
    no shard saying (all rows reused) it is the run's resolved one; "unknown" where the run
    has none (`auto`, or None: a job.json of release 0.1.0 that stopped before its first
    shard)."""
    found = {"devices": ",".join(ran["devices"])}
    if ran["precision"]:
        found["precision"] = ran["precision"]
    elif attrs.get("precision") in ("auto", None):
        found["precision"] = "unknown"
    return found


def check_rows(emb: np.ndarray, shard: str, id_of, normalized: bool) -> None:
    """`id_of(i)`: the id of row i of `emb` (only asked for the message)."""
    bad = ~np.isfinite(emb).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise VerificationError(f"non-finite embedding for id {id_of(i)!r} in shard {shard}")
    if normalized:
        norms = np.linalg.norm(emb, axis=1)
        off = np.abs(norms - 1.0) > 1e-3
        if off.any():
            i = int(np.flatnonzero(off)[0])
            raise VerificationError(f"embedding of id {id_of(i)!r} in shard {shard} "
                                    f"has norm {norms[i]:.4f}, expected 1 (normalized model)")


class IdColumn:
    """How ids (and urls) are stored: fixed width `S{longest}` up to ID_WIDTH_LIMIT bytes,
    variable-length UTF-8 above it (see ids.py for why)."""

    def __init__(self, width: int):
        self.width = width
        self.fixed = width <= ID_WIDTH_LIMIT

    def dtype(self, extra: int = 0):
        return f"S{self.width + extra}" if self.fixed else h5py.string_dtype("utf-8")

    def values(self, ids: pa.Array, extra: int = 0) -> np.ndarray:
        if self.fixed:
            return fixed_width(ids, self.width + extra)
        return np.array(as_text(ids).to_pylist(), dtype=object)


def url_values(template: str, ids: pa.Array) -> pa.Array:
    """template.format(id=...) for every id; a template whose only field is {id} is filled
    without per-row Python objects."""
    text = as_text(ids)
    head, sep, tail = template.partition("{id}")
    if sep and "{" not in head + tail and "}" not in head + tail:
        return pc.binary_join_element_wise(head, text, tail, "")
    return pa.array([template.format(id=i) for i in text.to_pylist()], pa.string())


class H5Writer:
    """embeddings.h5 with `n` rows written in increasing order, chunk by chunk."""

    def __init__(self, h5: h5py.File, n: int, ids: IdColumn, text_hash_type, spec,
                 where: str = H5):
        """`h5`: a new file (h5file.new_h5), which its opener closes; `where`: how a message
        names it."""
        self.h5, self.where = h5, where
        self.n, self.idcol, self.spec = n, ids, spec
        self.ids = self.h5.create_dataset("ids", (n,), dtype=ids.dtype())
        self.hashes = self.h5.create_dataset("text_hashes", (n,), dtype=text_hash_type)
        self.urls = None
        if spec.url_template:
            extra = len(spec.url_template.format(id="").encode())
            self.url_extra = extra
            self.urls = self.h5.create_dataset("urls", (n,), dtype=ids.dtype(extra))
        self.vectors = None
        self.digest = IdDigest()

    def write_rows(self, start: int, ids: pa.Array, text_hashes: np.ndarray) -> None:
        stop = start + len(text_hashes)
        check_storable(ids)
        self.ids[start:stop] = self.idcol.values(ids)
        self.digest.add_arrow(ids)
        self.hashes[start:stop] = text_hashes
        if self.urls is not None:
            self.urls[start:stop] = self.idcol.values(url_values(self.spec.url_template, ids),
                                                      self.url_extra)

    def write_vectors(self, start: int, matrix: np.ndarray) -> None:
        if self.vectors is None:
            dim = matrix.shape[1]
            if self.spec.storage.compression is None:
                require_space(Path(self.h5.filename).parent,
                              self.n * dim * np.dtype(self.spec.storage.dtype).itemsize,
                              self.where)
            self.vectors = self.h5.create_dataset(
                "embeddings", (self.n, dim), dtype=self.spec.storage.dtype,
                chunks=(min(self.n, max(1, VECTOR_CHUNK_BYTES // (4 * dim))), dim),
                compression=self.spec.storage.compression)
        self.vectors[start:start + len(matrix)] = matrix

    def finish(self, ran: dict) -> int:
        dim = self.vectors.shape[1]
        attrs = {**self.spec.attrs, **ran_attrs(ran, self.spec.attrs), "count": self.n, "dim": dim}
        for name, value in attrs.items():
            plain = isinstance(value, (int, float, str, bool))
            self.h5.attrs[name] = value if plain else json.dumps(value)
        return dim


def check_storable(ids: pa.Array) -> None:
    """An id with a NUL cannot be stored as the same bytes (the read stage rejects such ids
    as bad_id; a shard written by an older ray-embed may still hold one)."""
    at = holding_nul(ids)
    if at is not None:
        raise VerificationError(f"id {ids[at].as_py()!r} holds a NUL character, which "
                                f"{H5} cannot store exactly (a shard written by an older "
                                f"ray-embed); re-run with --fresh")


def verify_h5(path, expected: int, digest: str, chunk_rows: int) -> None:
    """Read the file back: row counts, and the ids are exactly the bytes written, chunk by
    chunk; their uniqueness was proven by the duplicate pass with the same exact comparison
    (Arrow string equality), so the stored ids are unique. The vectors were checked (finite,
    unit norm) as they were written; reading them back would read the file twice."""
    with h5py.File(path, "r") as h5:
        dset = h5["ids"]
        if len(dset) != expected or h5["embeddings"].shape[0] != expected:
            raise VerificationError(f"{H5}: {len(dset)} ids, expected {expected}")
        found = IdDigest()
        for start in range(0, expected, chunk_rows):
            found.add_stored(dset[start:start + chunk_rows])
        if found.hexdigest() != digest:
            raise VerificationError(f"{H5}: the ids read back differ from those deduplicated")
