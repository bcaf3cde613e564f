"""Every candidate link checked exactly: the cosine of the two rows' float32 vectors read
again from embeddings.h5 (the clusters' vectors are approximate: SQ8 codes or float16).
Candidates are collected in batches of BATCH links; each batch reads its rows in ascending
order, rows close together in one slice."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..finalize.vectors import unit
from .links import Candidates

BATCH = 65536
GAP = 64          # rows this close are read in one slice


def read_rows(dset, rows: np.ndarray) -> np.ndarray:
    """The datasets's rows `rows` (ascending, unique), in that order."""
    if not len(rows):
        return np.empty((0, *dset.shape[1:]), dset.dtype)
    cuts = np.flatnonzero(np.diff(rows) > GAP) + 1
    parts = []
    for group in np.split(rows, cuts):
        block = dset[int(group[0]):int(group[-1]) + 1]
        parts.append(block[group - group[0]])
    return np.concatenate(parts)


@dataclass
class Links:
    """Kept links: rows[i] duplicates targets[i] with the exact cosine cosines[i]."""
    rows: list = field(default_factory=list)
    targets: list = field(default_factory=list)
    cosines: list = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.rows:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
        return (np.concatenate(self.rows), np.concatenate(self.targets),
                np.concatenate(self.cosines))


class Rescorer:
    """Collects candidates; keeps those whose exact cosine is >= threshold."""

    def __init__(self, dset, threshold: float):
        self.dset, self.threshold = dset, threshold
        self.links = Links()
        self.candidates = 0
        self._pending: list[Candidates] = []
        self._count = 0

    def add(self, found: Candidates) -> None:
        if len(found.rows):
            self._pending.append(found)
            self._count += len(found.rows)
            if self._count >= BATCH:
                self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        rows = np.concatenate([c.rows for c in self._pending])
        targets = np.concatenate([c.targets for c in self._pending])
        self._pending, self._count = [], 0
        self.candidates += len(rows)
        needed = np.unique(np.concatenate([rows, targets]))
        vectors = unit(read_rows(self.dset, needed))
        a = vectors[np.searchsorted(needed, rows)]
        b = vectors[np.searchsorted(needed, targets)]
        cosines = np.einsum("ij,ij->i", a, b).astype(np.float32)
        keep = cosines >= self.threshold
        self.links.rows.append(rows[keep])
        self.links.targets.append(targets[keep])
        self.links.cosines.append(cosines[keep])
