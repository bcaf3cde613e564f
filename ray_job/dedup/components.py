"""Components of the links: every link points from a row to an EARLIER row, and each row has
at most one link (it lies in one cluster), so the links form a forest whose roots are the
lowest rows of their components. Each linked row's root is found by pointer jumping over the
linked rows only (a union-find that holds nothing for rows without a link)."""
from __future__ import annotations

import numpy as np


def roots(rows: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The root (lowest row of its component) of each linked row. `rows` ascending, unique;
    targets[i] < rows[i]."""
    root = targets.copy()
    while True:
        at = np.searchsorted(rows, root)
        inside = at < len(rows)
        linked = np.zeros(len(root), bool)
        linked[inside] = rows[at[inside]] == root[inside]
        if not linked.any():
            return root
        root[linked] = root[at[linked]]      # jump to the parent's current root
