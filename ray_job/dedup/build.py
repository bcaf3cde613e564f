"""`ray-embed dedup RUN --threshold T` (and finalize's `--drop-duplicates`): near-duplicate
papers of a finished run, in RUN/dedup/.

    dedup/pairs.parquet   one row per dropped paper (output.py has its columns)
    dedup/dedup.json      threshold, counts, method, and the fingerprint of the embeddings.h5
                          it was made from (written last)

Method (SemDeDup's): clusters first (clusters.py: the index's inverted lists when the run's
index is current and IVF, else k-means clusters of the run's own vectors), then, inside each
cluster, in row order, a row whose cosine to an EARLIER row of its cluster is >= T is a
duplicate of the most similar such row (links.py; every such link checked exactly against
embeddings.h5's vectors: rescore.py). Duplicates form the components of these links
(components.py). KEEP_RULE says which paper of a component is kept.

What it misses: a pair split across two clusters (their vectors fall nearest to different
centroids: rare for cosines near 1, more common the lower T is), and, in a cluster larger
than links.PIECE rows, matches beyond the first distinct rows of earlier pieces. The
benchmark measures recall on planted duplicates (benchmarks/dedup.py).

A dedup of the same vectors (fingerprint) and threshold is current and not made again.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq

from ..errors import UserError
from ..read.plan import frozen_plan
from ..rundir.fingerprint import h5_fingerprint, local_stat, made_from
from ..rundir.job import now_iso
from ..rundir.layout import DEDUP_INFO, DEDUP_PAIRS, H5
from ..rundir.rundir import RunDir
from ..search.index import LoadedIndex, is_current, stored_info
from . import clusters, components, links, output
from .rescore import Rescorer

KEEP_RULE = "the paper earliest in input order (lowest row) of each component is kept"
# candidates are looked for below T by the error of the clusters' vectors, then rescored
MARGIN = {"index lists": 0.03, "own k-means": 0.005}
EXAMPLES = 5


def check_threshold(threshold: float) -> float:
    if not 0 < threshold <= 1:
        raise UserError(f"the dedup threshold is a cosine in (0, 1]; got {threshold:g}")
    return float(threshold)


def build_dedup(run_dir: RunDir | str | Path, threshold: float, force: bool = False) -> dict:
    """Make RUN/dedup/ unless it is current for `threshold`; dedup.json's record plus
    `rebuilt`."""
    threshold = check_threshold(threshold)
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir.at(run_dir)
    h5 = run_dir.results.local(H5)
    if not force:
        info = current_info(run_dir, h5, threshold)
        if info is not None:
            return {**info, "rebuilt": False}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ray-embed-dedup-") as tmp:
        info = make_files(run_dir, h5, threshold, Path(tmp))
        info.update(fingerprint=h5_fingerprint(h5), h5_stat=local_stat(h5, run_dir.is_remote),
                    built=now_iso(), build_s=round(time.monotonic() - started, 2))
        (Path(tmp) / "dedup.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        run_dir.results.put(Path(tmp) / "pairs.parquet", DEDUP_PAIRS)
        run_dir.results.put(Path(tmp) / "dedup.json", DEDUP_INFO)     # last: it is current
    return {**info, "rebuilt": True}


def current_info(run_dir: RunDir, h5: Path, threshold: float) -> dict | None:
    if not (run_dir.results.has(DEDUP_INFO) and run_dir.results.has(DEDUP_PAIRS)):
        return None
    info = json.loads(run_dir.results.read_text(DEDUP_INFO))
    if info.get("threshold") != threshold or not made_from(info, h5, run_dir.is_remote):
        return None
    return info


def make_files(run_dir: RunDir, h5: Path, threshold: float, local: Path) -> dict:
    with h5py.File(h5, "r") as f:
        rows, dim = f["embeddings"].shape
    index = _current_ivf(run_dir, h5)
    with run_dir.scratch() as scratch, h5py.File(h5, "r") as f:
        if index is not None:
            method, groups = clusters.index_lists(index)
        else:
            method, groups = clusters.own_clusters(h5, rows, dim, scratch)
        rescorer = Rescorer(f["embeddings"], threshold)
        floor = threshold - MARGIN[method.clusters]
        largest = 0
        for cluster_rows, vectors in groups:
            largest = max(largest, len(cluster_rows))
            rescorer.add(links.cluster_candidates(cluster_rows, vectors, floor))
        rescorer.flush()
    linked, targets, cosines = rescorer.links.arrays()
    order = np.argsort(linked)
    linked, targets, cosines = linked[order], targets[order], cosines[order]
    roots = components.roots(linked, targets)
    both = np.concatenate([linked, roots])
    titles_file = index.titles if index is not None else None
    titles = output.titles_of(both, h5, run_dir.load_job(), frozen_plan(run_dir), titles_file)
    output.write_pairs(local / "pairs.parquet", output.pairs_table(
        linked, cosines, roots, output.ids_of(h5, both), titles))
    return {"threshold": threshold, "rows": int(rows), "pairs": int(len(linked)),
            "components": int(len(np.unique(roots))), "dropped": int(len(linked)),
            "kept": int(rows) - int(len(linked)), "keep": KEEP_RULE,
            "method": {"clusters": method.clusters, "count": method.count,
                       "largest": largest, "candidates": rescorer.candidates},
            "titles": any(t is not None for t in titles.values())}


def _current_ivf(run_dir: RunDir, h5: Path) -> LoadedIndex | None:
    """The run's index when it is current and its inverted lists can serve as clusters."""
    info = stored_info(run_dir)
    if info is None or not is_current(run_dir, info, h5):
        return None
    loaded = LoadedIndex.open(run_dir, info)
    return loaded if clusters.is_ivf(loaded) else None


def summary(info: dict, run_dir: RunDir) -> dict:
    """What report.json says of the near duplicates (its `near_duplicates`)."""
    return {key: info[key] for key in ("threshold", "rows", "pairs", "components", "dropped",
                                       "keep", "method", "rebuilt")} | {
        "pairs_file": run_dir.child_url(DEDUP_PAIRS)}


def format_summary(info: dict) -> str:
    what = "" if info["rebuilt"] else " (up to date)"
    return (f"dedup{what}: {info['rows']:,} papers, {info['pairs']:,} duplicate pairs in "
            f"{info['components']:,} components at cosine >= {info['threshold']:g}: "
            f"{info['dropped']:,} to drop ({KEEP_RULE})")


def format_examples(run_dir: RunDir, n: int = EXAMPLES) -> list[str]:
    """Up to `n` pairs, the closest first: cosine, the dropped paper, the kept one."""
    table = pq.read_table(run_dir.results.local(DEDUP_PAIRS))
    if not table.num_rows:
        return []
    order = np.argsort(-table.column("cosine").to_numpy(), kind="stable")[:n]
    lines = []
    for row in table.take(order).to_pylist():
        lines.append(f"  {row['cosine']:.4f}  {row['id']} {_title(row['title'])}\n"
                     f"          = kept {row['duplicate_of']} {_title(row['duplicate_of_title'])}")
    return lines


def _title(title: str | None) -> str:
    if not title:
        return ""
    return repr(title if len(title) <= 70 else title[:67] + "...")
