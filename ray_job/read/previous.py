"""Incremental runs (`--previous OLD_DIR_OR_H5`): a paper whose id and text hash are unchanged
keeps its old embedding; only new and changed papers are encoded.

The read stage sorts each row into reused / changed / new; reused rows are listed in the run's
reuse lists (RunDir.reads.write_reuse: key, id, text hash, row in the old file) and the finalizer
copies their vectors from the old embeddings.h5.

What a run reuses is pinned to the old file's content: `open_previous` (on the driver, before
anything is written) takes its fingerprint (`content_fingerprint`: which paper is at which row,
the attributes, the vectors' shape and a sample of them), which the run's record keeps; finalize
refuses an old file whose fingerprint changed since (`verify_pin`), and checks every reused row's
id and text hash against the old file as it copies the vector (`previous_embeddings`). A
re-run of the same command classifies the rows again against what the old run holds then.
"""
from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from functools import partial
from operator import methodcaller
from pathlib import Path

import h5py
import numpy as np

from ..errors import DataError, UserError
from ..redact import redact_url
from ..rundir.job import COMPAT_DEFAULTS
from ..storage.files import first_line, is_url

# Optional dataset of embeddings.h5: id_hashes(ids), row for row (uint64). Used when present so
# a 10M-row --previous is not hashed again; computed from `ids` when absent (older files).
ID_HASHES = "id_hashes"
ID_HASH_SAMPLE = 64       # rows of a stored id_hashes dataset checked against their ids
ID_HASH_CHUNK = 1 << 16
PIN_SAMPLE_ROWS = 16      # vectors of the old file hashed into its pin (rows spread evenly)
# what `Previous.classify_many` returns per row
NEW, CHANGED, REUSED = 0, 1, 2
STATUS_NAMES = ("new", "changed", "reused")


def text_hash(text: str) -> int:
    """64-bit hash of a text's UTF-8 bytes. Never raises: "surrogatepass" gives the very bytes
    of strict UTF-8 for every valid string (so hashes are unchanged) and also encodes lone
    surrogates, which the read stage rejects as bad_text before they get here."""
    data = text.encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


_blake8 = partial(hashlib.blake2b, digest_size=8)
_digest = methodcaller("digest")
_utf8 = methodcaller("encode", "utf-8", "surrogatepass")


def id_hashes(ids, chunk: int = ID_HASH_CHUNK) -> np.ndarray:
    """text_hash of every id (str, or the UTF-8 bytes h5py gives), as uint64: the same values
    as `text_hash(i)` per id, without a Python-level loop (map over C callables), a chunk of
    ids at a time (joining all digests at once would hold ~50 B per id)."""
    out = np.empty(len(ids), dtype=np.uint64)
    for start in range(0, len(ids), chunk):
        part = ids[start:start + chunk]
        data = part if isinstance(part[0], bytes) else map(_utf8, part)
        joined = b"".join(map(_digest, map(_blake8, data)))
        out[start:start + len(part)] = np.frombuffer(joined, dtype="<u8")
    return out


@dataclass
class Previous:
    """Sorted lookup over an old run: id hash -> (text hash, row)."""
    h5_path: str
    id_hash: np.ndarray
    text_hash: np.ndarray
    row: np.ndarray
    count: int
    fingerprint: str = ""        # of the lookup's content (reads records name it, resume.py)
    attrs: dict = field(default_factory=dict)   # the old file's attributes (plain values)
    pin: dict | None = None      # {"location", "fingerprint"}: kept in the run's record

    def classify(self, row_id: str, t_hash: int) -> tuple[str, int]:
        """One row (the tests' oracle for `classify_many`)."""
        h = np.uint64(text_hash(row_id))
        i = int(np.searchsorted(self.id_hash, h))
        if i >= len(self.id_hash) or self.id_hash[i] != h:
            return "new", -1
        if self.text_hash[i] != np.uint64(t_hash):
            return "changed", -1
        return "reused", int(self.row[i])

    def classify_many(self, id_hash: np.ndarray,
                      t_hash: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every row at once: (status per row: NEW / CHANGED / REUSED, row in the old file or
        -1), from the rows' id hashes and text hashes (uint64 arrays)."""
        id_hash = np.asarray(id_hash, dtype=np.uint64)
        t_hash = np.asarray(t_hash, dtype=np.uint64)
        status = np.full(len(id_hash), NEW, dtype=np.int8)
        old_row = np.full(len(id_hash), -1, dtype=np.int64)
        if not len(self.id_hash) or not len(id_hash):
            return status, old_row
        # queries in sorted order: each binary search starts near the last one, so the
        # lookups walk the table once instead of jumping across it
        order = np.argsort(id_hash)
        i = np.empty(len(id_hash), dtype=np.int64)
        i[order] = np.searchsorted(self.id_hash, id_hash[order])
        np.minimum(i, len(self.id_hash) - 1, out=i)
        found = self.id_hash[i] == id_hash
        same = found & (self.text_hash[i] == t_hash)
        status[found] = CHANGED
        status[same] = REUSED
        old_row[same] = self.row[i[same]]
        return status, old_row


def previous_h5(path: str) -> Path:
    """The old embeddings.h5 as a local file: `path` is a run directory or the file itself,
    local or a URL (s3://..., hf://...; fetched once into this user's private cache)."""
    from ..rundir.layout import H5
    from ..rundir.rundir import RunDir

    parent, name = (path.rstrip("/").rsplit("/", 1) if path.rstrip("/").endswith(".h5")
                    else (path, H5))
    run_dir = RunDir.at(parent if is_url(path) else Path(parent).expanduser())
    if not run_dir.results.has(name):
        raise UserError(f"--previous {path}: no embeddings.h5 there")
    return run_dir.results.local(name)


def load_previous(path: str, expected: dict) -> Previous:
    """The lookup over the old run at `path`, whose embeddings.h5 must hold the attributes
    `expected` (JobRecord.compat_attrs: the same model, template, precision, ...)."""
    previous = open_previous(path)
    check_compatible(previous, expected, path)
    return previous


def open_previous(path: str) -> Previous:
    """The lookup over the old run at `path` and its pin; an old file that is not a readable
    embeddings.h5 (not HDF5, cut short, datasets missing or of other lengths) is one line."""
    h5_path = previous_h5(path)
    with readable_previous(path), h5py.File(h5_path, "r") as h5:
        check_layout(h5, path)
        hashes, t_hashes = lookup_hashes(h5)
        attrs = {name: _plain(value) for name, value in h5.attrs.items()}
        pin = {"location": redact_url(path),
               "fingerprint": content_fingerprint(h5, hashes, t_hashes)}
    order = np.argsort(hashes, kind="stable")
    return Previous(str(h5_path), hashes[order], t_hashes[order], order.astype(np.int64),
                    len(hashes), lookup_fingerprint(hashes, t_hashes), attrs, pin)


def check_compatible(previous: Previous, expected: dict, path: str) -> None:
    """Refuse (one line) an old run made with other settings than `expected` (an attribute a
    file made before it has not got reads as its default: `prompt`, none)."""
    old = {k: previous.attrs.get(k, COMPAT_DEFAULTS.get(k)) for k in expected}
    differ = [f"{k}: {old[k]!r} -> {expected[k]!r}" for k in expected if old[k] != expected[k]]
    if differ:
        raise UserError(f"--previous {redact_url(path)} was made with other settings "
                        f"({'; '.join(differ)}); its embeddings cannot be reused")


@contextlib.contextmanager
def readable_previous(path: str):
    """Errors reading the old embeddings.h5 as one line naming `path`."""
    try:
        yield
    except (UserError, DataError):
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"--previous {redact_url(path)}: not a readable embeddings.h5 "
                        f"({first_line(exc)})") from None


def check_layout(h5, path: str) -> None:
    """The datasets a reuse needs, each with one row per paper."""
    if "text_hashes" not in h5:
        raise UserError(f"--previous {redact_url(path)}: made without text hashes; cannot "
                        f"reuse it")
    for name in ("ids", "embeddings"):
        if name not in h5:
            raise UserError(f"--previous {redact_url(path)}: not a readable embeddings.h5 "
                            f"(no {name} dataset)")
    rows = {name: h5[name].shape[0] if h5[name].shape else None
            for name in ("ids", "text_hashes", "embeddings")}
    if len(set(rows.values())) != 1 or len(h5["embeddings"].shape) != 2:
        shapes = ", ".join(f"{name} {h5[name].shape}" for name in rows)
        raise UserError(f"--previous {redact_url(path)}: not a readable embeddings.h5 "
                        f"(datasets of different lengths: {shapes})")


def lookup_hashes(h5) -> tuple[np.ndarray, np.ndarray]:
    """Each old row's id hash and text hash, in file order."""
    hashes = stored_id_hashes(h5)
    if hashes is None:
        hashes = id_hashes(h5["ids"][:])
    return hashes, h5["text_hashes"][:].astype(np.uint64)


def content_fingerprint(h5, id_hash: np.ndarray, t_hash: np.ndarray) -> str:
    """What a run reuses from an old embeddings.h5, as one digest: which paper (id hash) with
    which text (text hash) is at each row, the attributes (model, precision, count, ...), the
    vectors' shape and dtype, and PIN_SAMPLE_ROWS of the vectors themselves. Reads what
    `lookup_hashes` read and a few chunks: ~16 B per row, not the vectors."""
    digest = hashlib.sha256(lookup_fingerprint(id_hash, t_hash).encode())
    for name in sorted(h5.attrs):
        digest.update(f"{name}={_plain(h5.attrs[name])!r}\n".encode())
    vectors = h5["embeddings"]
    digest.update(f"{vectors.shape} {vectors.dtype}\n".encode())
    n = vectors.shape[0]
    sample = np.unique(np.linspace(0, n - 1, min(n, PIN_SAMPLE_ROWS)).astype(np.int64))
    if len(sample):
        digest.update(np.ascontiguousarray(vectors[sample]).tobytes())
    return digest.hexdigest()[:32]


def verify_pin(h5_path: Path, pin: dict, where: str) -> None:
    """Refuse (one line, nothing written) to finalize the run at `where` from an old file
    whose content is no longer the one its rows were classified against (`pin`)."""
    location = pin["location"]
    with readable_previous(location), h5py.File(h5_path, "r") as h5:
        check_layout(h5, location)
        now = content_fingerprint(h5, *lookup_hashes(h5))
    if now != pin["fingerprint"]:
        raise UserError(f"--previous {location} changed since {where} started (its "
                        f"embeddings.h5 is not the one this run's rows were matched against); "
                        f"run the same `ray-embed run` command again to reuse from what it "
                        f"holds now")


def lookup_fingerprint(id_hash: np.ndarray, t_hash: np.ndarray) -> str:
    """Digest of what classifying a row depends on: each old row's id hash and text hash, in
    file order (a resume with another --previous must read its units again)."""
    digest = hashlib.sha1(np.ascontiguousarray(id_hash, dtype="<u8"))
    digest.update(np.ascontiguousarray(t_hash, dtype="<u8"))
    return digest.hexdigest()[:16]


def stored_id_hashes(h5) -> np.ndarray | None:
    """The file's ID_HASHES dataset when it has one that matches its ids (its length, and a
    sample of rows hashed again); None when it must be computed."""
    if ID_HASHES not in h5:
        return None
    ids, stored = h5["ids"], h5[ID_HASHES]
    if stored.shape != ids.shape:
        return None
    sample = np.unique(np.linspace(0, len(ids) - 1, min(len(ids), ID_HASH_SAMPLE)).astype(np.int64))
    if len(sample) and not np.array_equal(id_hashes(ids[sample]), stored[sample].astype(np.uint64)):
        return None
    return stored[:].astype(np.uint64)


def _plain(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    return value.decode() if isinstance(value, bytes) else value


def previous_embeddings(h5_path: str, rows: np.ndarray, ids=None,
                        t_hash: np.ndarray | None = None) -> np.ndarray:
    """Rows of the old file's embeddings, in the order asked (h5py wants increasing indices).
    With `ids` and `t_hash` (what the reuse list says each row holds), each row is checked to
    hold that very id and text in the old file first: a DataError names the first that does
    not (the file changed since the rows were classified)."""
    unique, inverse = np.unique(rows, return_inverse=True)
    with h5py.File(h5_path, "r") as h5:
        if ids is not None:
            check_rows(h5, unique, inverse, ids, t_hash, h5_path)
        picked = h5["embeddings"][unique]
    return picked[inverse]


def check_rows(h5, unique: np.ndarray, inverse: np.ndarray, ids, t_hash: np.ndarray,
               where) -> None:
    old_id = id_hashes(h5["ids"][unique])[inverse] if len(unique) else np.empty(0, np.uint64)
    old_text = h5["text_hashes"][unique].astype(np.uint64)[inverse]
    wrong = (old_id != id_hashes(ids)) | (old_text != np.asarray(t_hash, dtype=np.uint64))
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise DataError(f"--previous {where}: its row {int(unique[inverse[i]])} is not the row "
                        f"reused for id {ids[i]!r} (the file changed since this run's rows "
                        f"were matched against it); run the same `ray-embed run` command "
                        f"again to reuse from what it holds now")


def incremental_counts(counts: dict[str, int], previous: Path) -> dict[str, int]:
    """reused / new / changed rows of this run (from its reuse lists), and how many old
    papers are gone."""
    with h5py.File(previous, "r") as h5:
        old = int(h5.attrs["count"])
    return {**counts, "removed": old - counts["reused"] - counts["changed"],
            "previous": str(previous)}
