"""Search results: rank, cosine score, paper id, title (where the index has titles), url."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from .titles import read_titles


@dataclass
class Hit:
    rank: int
    score: float
    id: str
    title: str | None
    url: str | None


def make_hits(h5_path: Path, rows: np.ndarray, scores: np.ndarray,
              titles: Path | None = None) -> list[Hit]:
    """Hits for h5 rows in rank order."""
    rows = [int(r) for r in rows]
    with h5py.File(h5_path, "r") as h5:
        ids = [h5["ids"][r].decode() for r in rows]
        urls = [h5["urls"][r].decode() for r in rows] if "urls" in h5 else [None] * len(rows)
    return [Hit(rank + 1, float(score), i, title, url) for rank, (i, score, title, url)
            in enumerate(zip(ids, scores, read_titles(titles, rows), urls, strict=True))]


def format_hits(hits: list[Hit]) -> str:
    return "\n".join(f"{h.rank:>3}  {h.score:.4f}  {h.id}" + (f"  {h.title}" if h.title else "")
                     + (f"  {h.url}" if h.url else "") for h in hits)


def hits_json(hits: list[Hit]) -> str:
    return json.dumps([asdict(h) for h in hits], ensure_ascii=False, indent=2)
