"""The quality pass: finalize's RowWatcher (finalize/merge.py), fed every written row once.
It keeps the health measures (health.py), spills vector hashes for the identical-vector
check (identical.py) and copies the sampled rows (sample.py): memory is the sample and one
chunk, at any row count."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from .health import Health
from .identical import Identical, IdenticalVectors
from .sample import sample_rows, sample_size


@dataclass
class Sample:
    """The sampled rows: h5 row, key, id and vector (float32, as written)."""
    rows: np.ndarray
    keys: np.ndarray
    ids: list[str]
    vectors: np.ndarray


@dataclass
class Measured:
    health: Health
    identical: Identical
    sample: Sample


class QualityTap:
    def __init__(self, scratch: Path, max_tokens: int | None):
        self.scratch = scratch
        self.health = Health(max_tokens)
        self.identical: IdenticalVectors | None = None
        self.rows = 0
        self.wanted: np.ndarray | None = None
        self._keys: list[np.ndarray] = []
        self._ids: list[str] = []
        self._vectors: list[np.ndarray] = []

    def begin(self, rows: int) -> None:
        self.rows = rows
        self.identical = IdenticalVectors(self.scratch, rows)

    def add(self, start: int, batch: pa.RecordBatch, vectors: np.ndarray) -> None:
        if self.wanted is None:
            self.wanted = sample_rows(self.rows, sample_size(vectors.shape[1]))
        self.health.add(vectors, batch.column("n_tokens").to_numpy())
        self.identical.add(start, vectors, batch.column("text_hash").to_numpy())
        lo, hi = np.searchsorted(self.wanted, [start, start + len(vectors)])
        if hi > lo:
            local = self.wanted[lo:hi] - start
            self._keys.append(batch.column("key").to_numpy()[local])
            self._ids += batch.column("id").take(pa.array(local)).to_pylist()
            self._vectors.append(np.array(vectors[local], np.float32))

    def finish(self) -> Measured:
        wanted = self.wanted if self.wanted is not None else np.zeros(0, np.int64)
        dim = self._vectors[0].shape[1] if self._vectors else 0
        sample = Sample(wanted, _concat(self._keys, np.int64),
                        self._ids, np.concatenate(self._vectors) if self._vectors
                        else np.zeros((0, dim), np.float32))
        found = self.identical.find() if self.identical is not None else Identical()
        return Measured(self.health, found, sample)


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)
