"""`ray-embed search DIR "query"`: embed the query with the run's model and settings, then find
the nearest papers (cosine): through the run's index when it is current (candidates from the
index, scored exactly against embeddings.h5), else by scanning embeddings.h5 in chunks."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..encode.encoder import Encoder
from ..encode.tokenize import model_recipe, texts_encoder, token_array
from ..rundir.rundir import RunDir
from . import ann
from .hits import Hit, make_hits
from .index import LoadedIndex, current_index, result_h5

CHUNK_ROWS = 65536
CANDIDATES_PER_HIT = 3       # index candidates scored exactly per hit asked for


def embed_queries(run_dir: RunDir, queries: list[str], prompt: str | None = None,
                  prompt_name: str | None = None) -> np.ndarray:
    """The queries embedded as the run's model embeds a query: its query side (an asymmetric
    model's query route) with the query prompt (`prompt` or the model's prompt `prompt_name`,
    else the run's: job.json's model.query_prompt), tokenized by the pipeline's own tokenize
    code, with the run's pooling and batching and the device and precision its record asked of
    every replica (settled for this machine as a replica settles them)."""
    job = run_dir.load_job()
    encoder = Encoder(job.query_replica(prompt, prompt_name))
    recipe = model_recipe(encoder.model.info, job.spec.trust_remote_code, job.revision)
    emb, _ = encoder.embed_token_lists(token_array(texts_encoder(recipe)(queries)))
    return emb


def top_k(h5_path: Path, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact: indices [q, k] and cosine scores of the k nearest rows per query, one chunk at
    a time."""
    q = ann.unit(queries)
    best_idx = np.empty((len(q), 0), dtype=np.int64)
    best_score = np.empty((len(q), 0), dtype=np.float32)
    for start, chunk in zip(range(0, 1 << 62, CHUNK_ROWS), ann.h5_chunks(h5_path, CHUNK_ROWS),
                            strict=False):   # the range only numbers the chunks
        scores = np.concatenate([best_score, q @ chunk.T], axis=1)
        idx = np.concatenate([best_idx, np.broadcast_to(
            np.arange(start, start + len(chunk)), (len(q), len(chunk)))], axis=1)
        keep = best_first(scores, k)
        best_score = np.take_along_axis(scores, keep, 1)
        best_idx = np.take_along_axis(idx, keep, 1)
    return best_idx, best_score


def best_first(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k highest scores per row, highest first."""
    if scores.shape[1] > k:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
    return np.take_along_axis(part, order, 1)


def exact_scores(h5_path: Path, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosine of one query with these rows of embeddings.h5."""
    order = np.argsort(rows)
    with h5py.File(h5_path, "r") as h5:
        vectors = ann.unit(h5["embeddings"][np.sort(rows)])
    scores = np.empty(len(rows), dtype=np.float32)
    scores[order] = vectors @ ann.unit(query[None])[0]
    return scores


def nearest(h5_path: Path, index: LoadedIndex | None, query: np.ndarray, k: int,
            exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the k nearest rows to one query vector, best first (`exclude`: a
    row never returned, the paper itself)."""
    extra = 0 if exclude is None else 1
    if index is None:
        rows, scores = (a[0] for a in top_k(h5_path, query[None], k + extra))
    else:
        rows = index.candidates(query[None], index.rescore(CANDIDATES_PER_HIT) * k + extra)[0]
        rows = np.unique(rows[rows >= 0])
        scores = exact_scores(h5_path, query, rows)
    keep = rows != exclude if exclude is not None else np.ones(len(rows), bool)
    rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))[:k]
    return rows[order], scores[order]


def search(directory: str | Path, queries: list[str], k: int = 10, prompt: str | None = None,
           prompt_name: str | None = None) -> list[list[Hit]]:
    """The k nearest papers of each query; `prompt` / `prompt_name`: the query prompt instead
    of the run's."""
    run_dir = RunDir.at(directory)
    h5 = result_h5(run_dir)
    index = current_index(run_dir, h5)
    titles = index.titles if index else None
    return [make_hits(h5, *nearest(h5, index, vector, k), titles)
            for vector in embed_queries(run_dir, queries, prompt, prompt_name)]
