"""Inside one cluster: each row's most similar EARLIER row (lower h5 row), when their cosine
is at least `floor`: at most one candidate link per row.

Work is bounded per row, whatever the cluster's size: the rows are taken in pieces of PIECE
rows (in row order); a row is compared with the earlier rows of its piece and with up to
PIECE rows of earlier pieces that found no earlier match (the cluster's first distinct
rows). So a collapsed cluster (every vector the same) costs PIECE x 2 PIECE dot products
per piece, never all pairs; what it gives up: in a cluster larger than PIECE rows, a row
whose only match lies in an earlier piece, beyond those first distinct rows, is missed.
The similarity matrix is computed BLOCK rows at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PIECE = 4096
BLOCK = 1024


@dataclass
class Candidates:
    """Candidate links: rows[i] may duplicate targets[i] (targets[i] < rows[i])."""
    rows: np.ndarray
    targets: np.ndarray

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64))


def cluster_candidates(rows: np.ndarray, vectors: np.ndarray, floor: float) -> Candidates:
    """`rows` ascending, `vectors` their unit vectors (float32, approximate is fine)."""
    found_rows, found_targets = [], []
    memory_rows = np.empty(0, np.int64)
    memory = np.empty((0, vectors.shape[1]), np.float32)
    for start in range(0, len(rows), PIECE):
        piece_rows, piece = rows[start:start + PIECE], vectors[start:start + PIECE]
        target = _piece_targets(piece, memory, floor)
        linked = target >= 0
        found_rows.append(piece_rows[linked])
        found_targets.append(np.concatenate([memory_rows, piece_rows])[target[linked]])
        room = PIECE - len(memory_rows)
        if room > 0:
            fresh = np.flatnonzero(~linked)[:room]
            memory_rows = np.concatenate([memory_rows, piece_rows[fresh]])
            memory = np.concatenate([memory, piece[fresh]])
    if not found_rows:
        return Candidates.empty()
    return Candidates(np.concatenate(found_rows), np.concatenate(found_targets))


def _piece_targets(piece: np.ndarray, memory: np.ndarray, floor: float) -> np.ndarray:
    """Per row of `piece`: the index of its most similar earlier vector in memory + piece
    (memory first, then the piece's own earlier rows), or -1 below `floor`."""
    n, m = len(piece), len(memory)
    target = np.full(n, -1, np.int64)
    for s in range(0, n, BLOCK):
        e = min(n, s + BLOCK)
        block = piece[s:e]
        sims = block @ np.concatenate([memory, piece[:e]]).T if m else block @ piece[:e].T
        # a row's own position and the later rows of the piece are not "earlier"
        later = np.arange(e)[None, :] >= np.arange(s, e)[:, None]
        sims[:, m:][later] = -np.inf
        best = np.argmax(sims, axis=1)
        value = sims[np.arange(e - s), best]
        target[s:e] = np.where(value >= floor, best, -1)
    return target
