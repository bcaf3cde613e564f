"""`ray-embed search DIR "query"`: embed the query with the run's model and settings and scan
embeddings.h5 in chunks for the nearest papers (cosine)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..config import JobConfig
from ..encode.encoder import Encoder
from ..encode.precision import pick_precision
from ..rundir.layout import H5
from ..rundir.rundir import RunDir
from ..encode.tokenize import load_tokenizer, tokenize_texts

CHUNK_ROWS = 65536


@dataclass
class Hit:
    rank: int
    score: float
    id: str
    url: str | None


def embed_queries(run_dir: RunDir, queries: list[str]) -> np.ndarray:
    """The queries embedded exactly as the run embedded papers (model, pooling, precision)."""
    job = run_dir.load_job()
    cfg = JobConfig.from_dict(job["config"]).replace(device="cpu")
    encoder = Encoder(cfg.to_dict(), job["model"]["source"], device="cpu",
                      precision=pick_precision(cfg.spec.precision, "cpu"))
    info = encoder.model.info
    tokenizer = load_tokenizer(info.tokenizer_source, cfg.spec.trust_remote_code)
    emb, _ = encoder.embed_token_lists(tokenize_texts(tokenizer, queries, info.max_seq_length))
    return emb


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def top_k(h5_path: Path, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices [q, k] and cosine scores of the k nearest rows per query, one chunk at a time."""
    q = unit_rows(queries.astype(np.float32))
    best_idx = np.empty((len(q), 0), dtype=np.int64)
    best_score = np.empty((len(q), 0), dtype=np.float32)
    with h5py.File(h5_path, "r") as h5:
        dset = h5["embeddings"]
        for start in range(0, dset.shape[0], CHUNK_ROWS):
            chunk = unit_rows(dset[start:start + CHUNK_ROWS].astype(np.float32))
            scores = np.concatenate([best_score, q @ chunk.T], axis=1)
            idx = np.concatenate([best_idx, np.broadcast_to(
                np.arange(start, start + len(chunk)), (len(q), len(chunk)))], axis=1)
            keep = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            best_score = np.take_along_axis(scores, keep, 1)
            best_idx = np.take_along_axis(idx, keep, 1)
    return best_idx, best_score


def search(directory: str | Path, queries: list[str], k: int = 10) -> list[list[Hit]]:
    run_dir = RunDir.at(directory)
    h5_path = run_dir.local_result(H5)
    idx, scores = top_k(h5_path, embed_queries(run_dir, queries), k)
    with h5py.File(h5_path, "r") as h5:
        ids, urls = h5["ids"], h5["urls"] if "urls" in h5 else None
        return [[Hit(r + 1, float(s), ids[i].decode(), urls[i].decode() if urls is not None else None)
                 for r, (i, s) in enumerate(zip(row_idx, row_scores))]
                for row_idx, row_scores in zip(idx, scores)]


def format_hits(hits: list[Hit]) -> str:
    return "\n".join(f"{h.rank:>3}  {h.score:.4f}  {h.id}" + (f"  {h.url}" if h.url else "")
                     for h in hits)
