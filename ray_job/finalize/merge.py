"""Merge shards into embeddings.h5 in key order, verified, in memory that does not grow with
the row count.

Three streaming passes over local scratch (RunDir.scratch): the sources' index columns
(merge_sources.py), read once, become sorted runs (key_order.py, kway.py); their k-way merge
keeps one row per key (a block written twice counts once) and hash-partitions the ids
(dedupe.py); then the kept rows are written chunk by chunk, each chunk's vectors gathered from
the sources that hold them (h5out.py). Duplicate ids keep the row with the lowest key and the
others go to rejects/duplicates.jsonl. Every read unit is reconciled (reconcile.py) before the
output is written. The shards record what ran them (device, precision): the file records that
too, and a run whose shards ran in different precisions is refused rather than mixed silently.
A corrupt shard is moved aside (RunDir.shards.quarantine) and named in the error, so that
re-running the job recomputes exactly its rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa

from ..read.text import text_cap_summary
from ..rundir.layout import H5
from ..rundir.rundir import RunDir
from ..rundir.shards import CorruptShard
from .dedupe import Duplicates, IdBuckets, find_duplicates
from .h5file import new_h5
from .h5out import H5Writer, IdColumn, RanWith, VerificationError, check_rows, verify_h5
from .key_order import CHUNK_ROWS, Ordered, Scan, order_rows, scan_sources
from .merge_sources import ReuseSource, ShardSource, row_sources
from .reconcile import UnitCounter, reconcile_counts
from .rejected import LaterRejects, RejectTally

__all__ = ["MergeSpec", "Storage", "FinalizeResult", "VerificationError", "finalize",
           "ShardSource", "ReuseSource", "row_sources"]


@dataclass(frozen=True)
class Storage:
    dtype: str = "float32"
    compression: str | None = None


@dataclass(frozen=True)
class MergeSpec:
    """What the merged file must be: its attributes, urls, norms, storage."""
    attrs: dict
    url_template: str | None = None
    normalized: bool = False
    previous_h5: str | None = None
    storage: Storage = Storage()
    units: list | None = None           # the read plan's units: reconciled when given


class RowWatcher(Protocol):
    """Sees every row finalize writes, in output order, once (the quality measures:
    quality/tap.py). `begin` gets the number of rows the file will hold; `add` each written
    chunk: the h5 row of its first row, its index columns (key, id, text_hash, n_tokens: 0
    for a row reused from --previous) and its vectors as written (not normalised)."""

    def begin(self, rows: int) -> None: ...

    def add(self, start: int, batch: pa.RecordBatch, vectors: np.ndarray) -> None: ...


@dataclass
class FinalizeResult:
    count: int
    dim: int
    duplicates: int
    real_tokens: int
    computed_tokens: int
    ran_with: dict           # precision and devices of the shards merged
    reconciliation: dict | None = None
    rejected_by_reason: dict | None = None   # every rejects file, duplicates.jsonl included
    text_cap: dict | None = None        # from the reads/ records reconciliation read


def finalize(run_dir: RunDir, spec: MergeSpec,
             watcher: RowWatcher | None = None) -> FinalizeResult:
    """Merge and verify into the run's embeddings.h5; a corrupt shard is quarantined.
    `watcher` sees the rows as they are written."""
    try:
        with run_dir.scratch() as scratch:
            return _finalize(run_dir, spec, scratch, watcher)
    except CorruptShard as exc:
        raise run_dir.shards.quarantine(exc.name, exc.why) from None


def _finalize(run_dir: RunDir, spec: MergeSpec, scratch: Path,
              watcher: RowWatcher | None) -> FinalizeResult:
    sources = row_sources(run_dir, spec.previous_h5)
    scan = scan_sources(sources, scratch)
    if not scan.rows:
        raise VerificationError(f"no embedded rows under {run_dir.url}/shards: nothing to finalize")
    row_rejected = run_dir.rejects.row_keys()
    rejects = RejectTally(run_dir.rejects.tally())
    units = spec.units or []
    kept, dup_units = UnitCounter(units), UnitCounter(units)
    buckets, later = IdBuckets(scratch, scan.rows), LaterRejects(row_rejected)
    ordered = order_rows(scan, scratch / "ordered.arrow", [
        buckets, later, lambda start, chunk: kept.add(chunk.column("key").to_numpy())])
    dups = find_duplicates(buckets, ordered.rows, scratch, dup_units.add)
    kept.counts -= dup_units.counts
    kept.total -= dup_units.total
    embedded_later = later.embedded(dups)
    if len(embedded_later):
        run_dir.rejects.drop_rows(embedded_later)
        rejects.drop_rows(embedded_later)
        row_rejected = np.setdiff1d(row_rejected, embedded_later)
    totals = text_cap = None
    if spec.units is not None:
        reads = run_dir.reads.units()
        totals = reconcile_counts(spec.units, kept, dup_units, reads, rejects.per_unit(),
                                  row_rejected)
        text_cap = text_cap_summary(reads)
    run_dir.rejects.write_duplicates(dups.records())
    rejects.set_duplicates(dups.count)
    n = ordered.rows - dups.count
    if watcher is not None:
        watcher.begin(n)
    idcol = IdColumn(scan.id_width)
    with run_dir.results.writer(H5) as tmp:
        with new_h5(tmp, run_dir.child_url(H5)) as h5:
            writer = H5Writer(h5, n, idcol, np.uint64, spec, run_dir.child_url(H5))
            ran = _write_rows(writer, ordered, dups, sources, scan, spec.normalized,
                              spec.attrs.get("config_hash"), watcher)
            dim = writer.finish(ran)
        verify_h5(tmp, n, writer.digest.hexdigest(), CHUNK_ROWS)
    return FinalizeResult(n, dim, dups.count, scan.real_tokens, scan.computed_tokens, ran, totals,
                          rejects.by_reason(), text_cap)


def _write_rows(writer: H5Writer, ordered: Ordered, dups: Duplicates, sources: list,
                scan: Scan, normalized: bool, config_hash: str | None = None,
                watcher: RowWatcher | None = None) -> dict:
    """Pass 3: the kept rows, in order, chunk by chunk; returns what ran them."""
    ran, opened = RanWith(config_hash), np.zeros(len(sources), bool)
    out = 0
    for start, batch in ordered.chunks():
        keep = ~dups.dropped_in(start, batch.num_rows)
        batch = batch.filter(pa.array(keep)) if not keep.all() else batch
        if not batch.num_rows:
            continue
        ids = batch.column("id")
        writer.write_rows(out, ids, batch.column("text_hash").to_numpy())
        dim = writer.vectors.shape[1] if writer.vectors is not None else None
        matrix = _gather(batch.column("seq").to_numpy(), ids, sources, scan, opened, ran,
                         normalized, dim)
        writer.write_vectors(out, matrix)
        if watcher is not None:
            watcher.add(out, batch, matrix)
        out += batch.num_rows
    return ran.record()


def _gather(seq: np.ndarray, ids: pa.Array, sources: list, scan: Scan, opened: np.ndarray,
            ran: RanWith, normalized: bool, dim: int | None) -> np.ndarray:
    """The vectors of rows `seq` (in that order), one read per source, each checked."""
    src = np.searchsorted(scan.offsets, seq, "right") - 1
    rows = seq - scan.offsets[src]
    order = np.argsort(src, kind="stable")
    bounds = np.flatnonzero(np.diff(src[order])) + 1
    out = None
    for group in np.split(order, bounds):
        s = int(src[group[0]])
        source = sources[s]
        emb, meta = source.vectors(rows[group], first=not opened[s])
        if not opened[s]:
            ran.add(meta, source.name)
            opened[s] = True
        check_rows(emb, source.name, lambda i, group=group: ids[int(group[i])].as_py(), normalized)
        dim = dim or emb.shape[1]
        if emb.shape[1] != dim:
            raise VerificationError(f"{source.name} holds {emb.shape[1]}-dimensional embeddings, "
                                    f"other sources {dim}-dimensional ones")
        if out is None:
            out = np.empty((len(seq), dim), np.result_type(emb.dtype, np.float32))
        out[group] = emb
    return out
