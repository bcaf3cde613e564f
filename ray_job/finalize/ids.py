"""Id columns without per-row Python objects: Arrow string arrays -> fixed-width bytes (the h5
`ids` dtype) and a partition hash (which bucket file an id goes to, see dedupe.py).

The width policy. The `ids` dataset has always been fixed-width `S{longest id}`, and readers
(exports, search, `--previous`) expect bytes; for normal ids that stays exactly as it was. But
a fixed width is paid by every row: one 10 KB id among 100M would make the column 1 TB. So
above ID_WIDTH_LIMIT bytes the dataset becomes a variable-length UTF-8 string dataset instead
(h5py still returns bytes for it, so every reader keeps working), and the cost is the ids'
own bytes plus HDF5's per-row overhead (~16 B). 256 B is far above any real paper / record id
(arXiv ids are ~10 B, DOIs and URLs < 200 B) and caps the fixed column at 25.6 GB per 100M
rows, below the vectors of any model (>= 384 x 2 B per row). Nothing is rejected or truncated.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ID_WIDTH_LIMIT = 256
HASH_PREFIX = 64          # bytes of an id the partition hash reads (equal ids: equal hashes)


def _offsets_and_data(ids) -> tuple[np.ndarray, np.ndarray]:
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if not pa.types.is_large_binary(arr.type):
        arr = arr.cast(pa.large_binary())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], np.int64)[arr.offset:arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets, data


def byte_lengths(ids) -> np.ndarray:
    offsets, _ = _offsets_and_data(ids)
    return np.diff(offsets)


def max_byte_length(ids) -> int:
    return int(byte_lengths(ids).max(initial=0))


def id_matrix(ids, width: int) -> np.ndarray:
    """(rows, width) uint8: each id's UTF-8 bytes, zero padded (cut at `width`)."""
    offsets, data = _offsets_and_data(ids)
    lengths = np.diff(offsets)
    out = np.zeros((len(lengths), width), np.uint8)
    if len(lengths) and width:
        cols = np.arange(width)
        inside = cols < lengths[:, None]
        out[inside] = data[(offsets[:-1, None] + cols)[inside]]
    return out


def fixed_width(ids, width: int) -> np.ndarray:
    """The ids as numpy `S{width}` (what `np.array([s.encode() ...]).astype(f"S{width}")` gives)."""
    return id_matrix(ids, width).view(f"S{width}").reshape(-1)


def partition_hash(ids) -> np.ndarray:
    """uint64 per id from its length and first HASH_PREFIX bytes: equal ids hash equal."""
    words = id_matrix(ids, HASH_PREFIX).view("<u8")
    h = byte_lengths(ids).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        for j in range(words.shape[1]):
            h = (h ^ words[:, j]) * np.uint64(0x100000001B3)
            h ^= h >> np.uint64(29)
    return h


def as_text(ids) -> pa.Array:
    """The ids as an Arrow string array (for a variable-length h5 dataset or messages)."""
    arr = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    return pc.cast(arr, pa.string())


def holding_nul(ids) -> int | None:
    """The index of the first id with a NUL byte (which no h5 string type stores: a fixed
    width pads with NULs, a variable-length string ends at one), or None."""
    offsets, data = _offsets_and_data(ids)
    at = np.flatnonzero(data[offsets[0]:offsets[-1]] == 0)
    if not len(at):
        return None
    return int(np.searchsorted(offsets, offsets[0] + at[0], "right") - 1)


class IdDigest:
    """sha1 of a column of ids as exact bytes (each id's length and its bytes, in two
    streams, so how the column is chunked does not matter): what the duplicate pass compared
    (Arrow strings) and what h5py reads back (NUL padding stripped) digest alike only when
    every stored id is the very id that was deduplicated."""

    def __init__(self):
        self.lengths, self.data = hashlib.sha1(), hashlib.sha1()

    def add_arrow(self, ids) -> None:
        offsets, data = _offsets_and_data(ids)
        self._add(np.diff(offsets), data[offsets[0]:offsets[-1]])

    def add_stored(self, values: np.ndarray) -> None:
        """A slice of an h5 `ids` dataset as h5py returns it (`S{w}` or bytes objects)."""
        if values.dtype.kind == "S":
            width = values.dtype.itemsize
            matrix = values.view(np.uint8).reshape(-1, width)
            nonzero = matrix != 0
            lengths = np.where(nonzero.any(axis=1), width - np.argmax(nonzero[:, ::-1], axis=1), 0)
            self._add(lengths, matrix[np.arange(width) < lengths[:, None]])
            return
        items = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
        self._add(np.array([len(v) for v in items], np.int64),
                  np.frombuffer(b"".join(items), np.uint8))

    def _add(self, lengths: np.ndarray, data: np.ndarray) -> None:
        self.lengths.update(np.ascontiguousarray(lengths, dtype="<i8").tobytes())
        self.data.update(np.ascontiguousarray(data).tobytes())

    def hexdigest(self) -> str:
        return self.lengths.hexdigest() + self.data.hexdigest()
