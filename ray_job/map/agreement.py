"""k-NN label agreement at K: for each labelled row, the share of its K nearest labelled rows
(cosine, in embedding space) that carry its label. Unlabelled rows take no part (they are
neither queries nor neighbours).

Exact (quality/neighbours.py: a faiss flat search over the rows' normalised vectors). The
caller bounds the rows (`AGREEMENT_POINTS`, evenly spaced over the run): memory is their
vectors (50,000 x 1024 float32 = 200 MB) and one block of search results, time is quadratic
in them only.

By chance (every row's neighbours drawn at random from the other labelled rows) the mean
agreement is `chance`, as the quality report counts it (quality/neighbours.random_share).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..quality.neighbours import K, nearest, random_share
from .layout2d import read_sample

AGREEMENT_POINTS = 50_000


@dataclass
class Agreement:
    share: np.ndarray            # float32 per row asked for; NaN where it has no label
    mean: float                  # over the labelled rows
    chance: float                # the mean expected with neighbours drawn at random
    labelled: int


def label_agreement(h5: Path, rows: np.ndarray, codes: np.ndarray, k: int = K) -> Agreement:
    """The agreement of the sorted rows `rows` of `h5`, `codes` their labels (< 0: none)."""
    share = np.full(len(rows), np.nan, dtype=np.float32)
    labelled = np.flatnonzero(codes >= 0)
    k = min(k, len(labelled) - 1)
    if k < 1:
        return Agreement(share, float("nan"), float("nan"), len(labelled))
    vectors = np.ascontiguousarray(read_sample(h5, rows[labelled]), dtype=np.float32)
    own = codes[labelled]
    neighbours = nearest(vectors, k)
    share[labelled] = (own[neighbours] == own[:, None]).mean(axis=1)
    return Agreement(share, float(share[labelled].mean()), random_share(own), len(labelled))
