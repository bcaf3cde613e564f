"""Compact vectors: the int8 and binary exports of embeddings.h5 (`--export int8`,
`--export binary`), optionally of the first D dims only (`--truncate-dim D`, Matryoshka).

The codes are those of sentence-transformers' `quantize_embeddings` (tested bit for bit):

* int8: per dimension, the range [min, max] of the run's own vectors is cut into 256 steps;
  a value's code is floor((x - min) / step), clipped to 0..255, minus 128. The ranges are
  calibrated on every row (one pass over the file), so the codes are what
  `quantize_embeddings(all_vectors, "int8")` gives, without all vectors in memory.
* binary: one bit per dimension (x > 0), packed 8 to a byte, minus 128 (int8), as its
  "binary" precision; "ubinary" is the same bytes + 128.

Truncated vectors keep the first D dims and, for a normalised run, are L2-normalised again
(what `SentenceTransformer.encode(truncate_dim=D, normalize_embeddings=True)` gives).

Each export is an h5 file like embeddings.h5: `ids`, `embeddings` (N x D int8, or N x
ceil(D/8) for binary) and, for int8, `ranges` (2 x D float32, the calibration), with the
precision, dim, truncate_dim and source count as attributes.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from ..errors import UserError
from ..finalize.vectors import unit
from ..rundir.layout import BINARY, INT8
from ..rundir.rundir import RunDir

CHUNK_ROWS = 65536
FILES = {"int8": INT8, "binary": BINARY}


def truncated(chunk: np.ndarray, dim: int | None, normalized: bool) -> np.ndarray:
    """The first `dim` dims of each row (all when None), normalised again for a normalised run."""
    chunk = np.ascontiguousarray(chunk, dtype=np.float32)
    if dim is None or dim >= chunk.shape[1]:
        return chunk
    part = chunk[:, :dim]
    return unit(part) if normalized else np.ascontiguousarray(part)


def vector_chunks(h5_path: Path, truncate_dim: int | None = None,
                  rows: int = CHUNK_ROWS) -> Iterator[np.ndarray]:
    """embeddings.h5's vectors as float32, `rows` at a time, truncated as asked."""
    with h5py.File(h5_path, "r") as h5:
        dset = h5["embeddings"]
        check_truncate_dim(truncate_dim, dset.shape[1])
        normalized = bool(h5.attrs.get("normalized", False))
        for start in range(0, dset.shape[0], rows):
            yield truncated(dset[start:start + rows], truncate_dim, normalized)


def check_truncate_dim(truncate_dim: int | None, dim: int) -> None:
    if truncate_dim is not None and not 0 < truncate_dim <= dim:
        raise UserError(f"truncate_dim must be between 1 and the vectors' dim {dim}; "
                        f"got {truncate_dim}")


def int8_ranges(h5_path: Path, truncate_dim: int | None = None) -> np.ndarray:
    """(2, D) float32: the min and max of every dimension over all rows (the calibration)."""
    low = high = None
    for chunk in vector_chunks(h5_path, truncate_dim):
        lo, hi = chunk.min(axis=0), chunk.max(axis=0)
        low = lo if low is None else np.minimum(low, lo)
        high = hi if high is None else np.maximum(high, hi)
    if low is None:
        raise UserError(f"{h5_path} holds no vectors to calibrate int8 ranges on")
    return np.vstack((low, high))


def quantize(chunk: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """`quantize_embeddings(chunk, precision, ranges=ranges)`: int8 (ranges needed) or binary."""
    if precision == "int8":
        starts = ranges[0, :]
        steps = (ranges[1, :] - ranges[0, :]) / 255
        steps = np.where(steps == 0, 1, steps)
        return (np.clip(np.floor((chunk - starts) / steps), 0, 255) - 128).astype(np.int8)
    if precision == "binary":
        packed = np.packbits(chunk > 0, axis=-1).reshape(chunk.shape[0], -1)
        return (packed - 128).astype(np.int8)
    raise ValueError(f"unknown precision {precision!r}")


def int8_steps(ranges: np.ndarray) -> np.ndarray:
    """The width of one int8 step per dimension (1 where a dimension is constant), as
    `quantize` uses it: code c stands for min + (c + 128.5) * step."""
    steps = (ranges[1, :] - ranges[0, :]) / 255
    return np.where(steps == 0, 1, steps).astype(np.float32)


def export_compact(h5_path: Path, run_dir: RunDir, precision: str,
                   truncate_dim: int | None = None, dropped=None) -> str:
    """Write the `precision` export of `h5_path` into the run; returns its name.
    `dropped` (exports.DroppedRows): rows left out (the int8 ranges are still those of
    every row of embeddings.h5)."""
    name = FILES[precision]
    ranges = int8_ranges(h5_path, truncate_dim) if precision == "int8" else None
    with h5py.File(h5_path, "r") as source, run_dir.results.writer(name) as tmp:
        total, dim = source["embeddings"].shape
        rows = total - (dropped.count if dropped is not None else 0)
        kept = truncate_dim or dim
        width = kept if precision == "int8" else -(-kept // 8)
        with h5py.File(tmp, "w") as out:
            ids = out.create_dataset("ids", (rows,), dtype=source["ids"].dtype)
            codes = out.create_dataset("embeddings", (rows, width), dtype=np.int8,
                                       chunks=(min(max(rows, 1), CHUNK_ROWS), width))
            start = 0
            for first, chunk in zip(range(0, total, CHUNK_ROWS),
                                    vector_chunks(h5_path, truncate_dim), strict=True):
                chunk_ids = source["ids"][first:first + len(chunk)]
                if dropped is not None:
                    keep = dropped.kept(first, len(chunk))
                    chunk, chunk_ids = chunk[keep], chunk_ids[keep]
                stop = start + len(chunk)
                codes[start:stop] = quantize(chunk, precision, ranges)
                ids[start:stop] = chunk_ids
                start = stop
            if ranges is not None:
                out.create_dataset("ranges", data=ranges)
            out.attrs.update({"precision": precision, "dim": kept, "source_dim": dim,
                              "truncate_dim": truncate_dim or 0, "count": rows,
                              "normalized": bool(source.attrs.get("normalized", False)),
                              "model": str(source.attrs.get("model", ""))})
    return name
