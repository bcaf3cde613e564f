"""Which plotted rows lie in a near-duplicate component, from `ray-embed dedup`'s
RUN/dedup/pairs.parquet: each pair names the dropped paper's h5 row (`row`) and its
component (`cluster`: the kept paper's h5 row, itself in the component).

dedup.json (written last) must have been made from the run's embeddings.h5 as it is now
(its `fingerprint`, as map.json's), else the pairs are stale. Memory: one component id per
plotted row, and one batch of pairs (two columns) at a time; the pairs' count never is.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..rundir.fingerprint import made_from
from ..rundir.layout import DEDUP_INFO, DEDUP_PAIRS
from ..rundir.rundir import RunDir

NONE = -1
BATCH_PAIRS = 1 << 20


class NoDuplicates(UserError):
    """The run has no near-duplicate pairs made from its vectors as they are now."""


@dataclass
class Components:
    of_row: np.ndarray           # int64 per row asked for: its component, NONE outside one
    threshold: float | None      # the cosine the pairs were found at, when dedup.json says


def dedup_info(run_dir: RunDir, h5: Path) -> dict:
    again = f"run `ray-embed dedup {run_dir.url}` first"
    if not (run_dir.results.has(DEDUP_INFO) and run_dir.results.has(DEDUP_PAIRS)):
        raise NoDuplicates(f"{run_dir.url} has no near-duplicates yet: {again}")
    info = json.loads(run_dir.results.read_text(DEDUP_INFO))
    if not made_from(info, h5, run_dir.is_remote):
        raise NoDuplicates(f"{run_dir.url}'s near-duplicates were found in other vectors "
                           f"than its embeddings.h5 now: {again}")
    return info


def components(run_dir: RunDir, h5: Path, rows: np.ndarray) -> Components:
    """The component of each of the sorted rows `rows`."""
    import pyarrow.parquet as pq

    info = dedup_info(run_dir, h5)
    of_row = np.full(len(rows), NONE, dtype=np.int64)
    pairs = pq.ParquetFile(run_dir.results.local(DEDUP_PAIRS))
    for batch in pairs.iter_batches(batch_size=BATCH_PAIRS, columns=["row", "cluster"]):
        cluster = batch.column("cluster").to_numpy(zero_copy_only=False)
        for member in (batch.column("row").to_numpy(zero_copy_only=False), cluster):
            at = np.searchsorted(rows, member)
            hit = at < len(rows)
            hit[hit] = rows[at[hit]] == member[hit]
            of_row[at[hit]] = cluster[hit]
    threshold = info.get("threshold")
    return Components(of_row, float(threshold) if threshold is not None else None)
