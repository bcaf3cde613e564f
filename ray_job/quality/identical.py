"""Vectors identical for different texts, over every row, in flat memory: each row's vector
is hashed (64 bits over its float32 bit pattern) and (vector hash, text hash, row) spilled to
hash-partitioned bucket files on local scratch; each bucket is then sorted alone. Equal
vectors always share a bucket.

Two rows with one vector and two texts mean the model could not tell the texts apart (a
pooling that reads one token, a max length that cuts every text to its same first words):
the health measure. One vector under one text and two ids is the same paper twice, which
`ray-embed dedup` reports; it is counted apart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BUCKET_ROWS = 4_000_000       # rows per bucket aimed at (one bucket is sorted in memory)
MAX_BUCKETS = 256
EXAMPLES = 3
RECORD = np.dtype([("vector", "<u8"), ("text", "<u8"), ("row", "<i8")])


def vector_hashes(vectors: np.ndarray) -> np.ndarray:
    """64-bit hashes of the rows' float32 bit patterns (equal rows, equal hashes): the rows'
    bits as 64-bit words, times per-word odd constants, summed (mod 2**64), then mixed."""
    bits = np.ascontiguousarray(vectors, np.float32)
    if bits.shape[1] % 2:
        bits = np.concatenate([bits, np.zeros((len(bits), 1), np.float32)], axis=1)
    words = bits.view(np.uint64)
    weights = np.random.default_rng(0x5EED).integers(1, 2**63, words.shape[1],
                                                     dtype=np.uint64) | np.uint64(1)
    h = words @ weights
    h ^= h >> np.uint64(31)
    h *= np.uint64(0x9E3779B97F4A7C15)
    return h ^ (h >> np.uint64(29))


@dataclass
class Identical:
    """What the buckets held."""
    rows_shared: int = 0          # rows whose vector another text also has
    groups: int = 0               # distinct vectors held by more than one text
    same_text_copies: int = 0     # rows repeating an earlier row's text and vector
    examples: list[list[int]] = field(default_factory=list)   # rows of a few groups


class IdenticalVectors:
    def __init__(self, folder: Path, rows: int):
        self.count = int(min(MAX_BUCKETS, max(1, -(-rows // BUCKET_ROWS))))
        self.paths = [Path(folder) / f"vectors-{b:03d}.bin" for b in range(self.count)]
        self._files = [open(p, "wb") for p in self.paths]     # noqa: SIM115 - closed in find

    def add(self, start: int, vectors: np.ndarray, text_hashes: np.ndarray) -> None:
        records = np.empty(len(vectors), RECORD)
        records["vector"] = vector_hashes(vectors)
        records["text"] = text_hashes
        records["row"] = np.arange(start, start + len(vectors))
        bucket = records["vector"] % np.uint64(self.count)
        for b in np.unique(bucket):
            records[bucket == b].tofile(self._files[int(b)])

    def find(self) -> Identical:
        found = Identical()
        for fh in self._files:
            fh.close()
        for path in self.paths:
            records = np.fromfile(path, RECORD)
            path.unlink()
            if len(records) > 1:
                _scan_bucket(records, found)
        return found


def _scan_bucket(records: np.ndarray, found: Identical) -> None:
    """Only the records whose vector hash repeats are sorted by (vector, text, row): a
    vector's rows are then one run, its texts sorted in it."""
    by_vector = np.sort(records["vector"])
    repeated = np.unique(by_vector[1:][by_vector[1:] == by_vector[:-1]])
    if not len(repeated):
        return
    records = records[np.isin(records["vector"], repeated)]
    records = records[np.lexsort((records["row"], records["text"], records["vector"]))]
    vec, text = records["vector"], records["text"]
    same_vector = vec[1:] == vec[:-1]
    found.same_text_copies += int((same_vector & (text[1:] == text[:-1])).sum())
    starts = np.flatnonzero(np.r_[True, ~same_vector])
    sizes = np.diff(np.r_[starts, len(records)])
    new_text = np.r_[False, same_vector & (text[1:] != text[:-1])].astype(np.int64)
    several = np.add.reduceat(new_text, starts) > 0        # a second text in the run
    found.rows_shared += int(sizes[several].sum())
    found.groups += int(several.sum())
    for start, size in zip(starts[several][:EXAMPLES], sizes[several][:EXAMPLES], strict=True):
        if len(found.examples) < EXAMPLES:       # one row of each of its first texts
            texts = text[start:start + size]
            firsts = np.flatnonzero(np.r_[True, texts[1:] != texts[:-1]])[:EXAMPLES]
            found.examples.append(sorted(int(r) for r in records["row"][start + firsts]))
