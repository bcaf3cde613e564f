"""The clusters pairs are looked for in: each yields (rows ascending, their approximate unit
vectors as float32). Every row of embeddings.h5 is in exactly one cluster.

* `index_lists`: the inverted lists of the run's IVF index (ann.py's IVF{nlist}_HNSW32,SQ8),
  their SQ8 codes decoded (centroid + residual). Nothing is read from embeddings.h5.
* `own_clusters`: faiss k-means of the run's own vectors, trained on a bounded sample
  (ann.training_sample), about ROWS_PER_CLUSTER rows per cluster; the rows are assigned one
  chunk at a time and spilled as (cluster, row, float16 vector) to bucket files on local
  scratch (clusters grouped by cluster % buckets, about BUCKET_BYTES a bucket); then one
  bucket at a time is read back, sorted and cut into its clusters. Memory: the centroids,
  one chunk, one bucket.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..finalize.vectors import unit
from ..search import ann

ROWS_PER_CLUSTER = 1000
MAX_CLUSTERS = 1 << 17
TRAIN_PER_CLUSTER = 40
MAX_TRAIN = 262_144          # rows k-means is trained on, at most
KMEANS_ITER = 10
SEED = 0
BUCKET_BYTES = 256 << 20
MAX_BUCKETS = 512
FLAT_ASSIGN_BELOW = 1024     # centroids searched exactly below this; an HNSW graph above


@dataclass
class Method:
    """Where the clusters came from, for dedup.json."""
    clusters: str            # "index lists" or "own k-means"
    count: int


def is_ivf(loaded) -> bool:
    """An index whose inverted lists can serve as clusters: float32 vectors, IVF."""
    return (loaded is not None and not loaded.is_compact and bool(loaded.info)
            and int(loaded.info.get("nlist", 0)) > 0)


def index_lists(loaded) -> tuple[Method, Iterator[tuple[np.ndarray, np.ndarray]]]:
    import faiss

    ivf = faiss.downcast_index(faiss.extract_index_ivf(loaded.index))
    return Method("index lists", int(ivf.nlist)), _lists(ivf)


def _lists(ivf) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    import faiss

    lists = ivf.invlists
    for number in range(ivf.nlist):
        n = lists.list_size(number)
        if n < 2:
            continue
        rows = faiss.rev_swig_ptr(lists.get_ids(number), n).astype(np.int64)
        codes = faiss.rev_swig_ptr(lists.get_codes(number), n * lists.code_size).copy()
        vectors = ivf.sq.decode(codes.reshape(n, lists.code_size))
        if ivf.by_residual:
            vectors += ivf.quantizer.reconstruct(number)
        order = np.argsort(rows, kind="stable")
        yield rows[order], unit(vectors[order])


def cluster_count(rows: int) -> int:
    return int(min(MAX_CLUSTERS, max(1, round(rows / ROWS_PER_CLUSTER))))


def own_clusters(h5: Path, rows: int, dim: int,
                 scratch: Path) -> tuple[Method, Iterator[tuple[np.ndarray, np.ndarray]]]:
    k = cluster_count(rows)
    if k == 1:
        return Method("own k-means", 1), _one_cluster(h5)
    centroids = _train(h5, k, dim)
    buckets = _spill(h5, centroids, rows, dim, scratch)
    return Method("own k-means", k), _read_buckets(buckets, dim)


def _one_cluster(h5: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A run too small to split: one cluster (its vectors, exact)."""
    vectors = np.concatenate(list(ann.h5_chunks(h5)))
    yield np.arange(len(vectors), dtype=np.int64), vectors


def _train(h5: Path, k: int, dim: int) -> np.ndarray:
    import faiss

    sample = ann.training_sample(h5, min(MAX_TRAIN, TRAIN_PER_CLUSTER * k))
    kmeans = faiss.Kmeans(dim, k, niter=KMEANS_ITER, seed=SEED, spherical=True,
                          max_points_per_centroid=MAX_TRAIN, verbose=False)
    kmeans.train(sample)
    return unit(kmeans.centroids)


def _assigner(centroids: np.ndarray):
    import faiss

    dim = centroids.shape[1]
    if len(centroids) < FLAT_ASSIGN_BELOW:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = 64
    index.add(centroids)
    return index


def _schema(dim: int) -> pa.Schema:
    return pa.schema([("cluster", pa.int32()), ("row", pa.int64()),
                      ("vector", pa.list_(pa.float16(), dim))])


def _spill(h5: Path, centroids: np.ndarray, rows: int, dim: int, scratch: Path) -> list[Path]:
    per_bucket = max(1, BUCKET_BYTES // (2 * dim + 12))
    count = int(min(MAX_BUCKETS, max(1, math.ceil(rows / per_bucket))))
    paths = [scratch / f"dedup-{b:04d}.arrows" for b in range(count)]
    schema = _schema(dim)
    sinks = [pa.OSFile(str(p), "wb") for p in paths]
    writers = [ipc.new_stream(s, schema) for s in sinks]
    assigner = _assigner(centroids)
    start = 0
    for chunk in ann.h5_chunks(h5):
        _, nearest = assigner.search(chunk, 1)
        cluster = nearest[:, 0].astype(np.int32)
        row = np.arange(start, start + len(chunk), dtype=np.int64)
        start += len(chunk)
        bucket = cluster % count
        for b in np.unique(bucket):
            pick = bucket == b
            vectors = pa.FixedSizeListArray.from_arrays(
                pa.array(chunk[pick].astype(np.float16).reshape(-1)), dim)
            writers[b].write_table(pa.table([cluster[pick], row[pick], vectors],
                                             schema=schema))
    for writer, sink in zip(writers, sinks, strict=True):
        writer.close()
        sink.close()
    return paths


def _read_buckets(paths: list[Path], dim: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for path in paths:
        with pa.OSFile(str(path), "rb") as source:
            table = ipc.open_stream(source).read_all()
        path.unlink()
        if table.num_rows < 2:
            continue
        cluster = table.column("cluster").to_numpy()
        row = table.column("row").to_numpy()
        flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vectors = flat.reshape(-1, dim)
        del table
        order = np.lexsort((row, cluster))
        cluster, row = cluster[order], row[order]
        bounds = np.concatenate([[0], np.flatnonzero(np.diff(cluster)) + 1, [len(row)]])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if b - a > 1:
                yield row[a:b], unit(vectors[order[a:b]])
