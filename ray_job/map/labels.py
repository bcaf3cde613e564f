"""A label for every row of the map, read again from the run's inputs (one pass):

* by the input's `categories` when most rows have one (the arXiv snapshot's "hep-ph
  astro-ph.CO": the first category's archive, "hep-ph"; "math.CO" is "math"), the
  MAX_LABELS most common kept, the rest unlabelled;
* else by clusters of the map: k-means on the plotted rows' positions, each cluster named by
  the three words of its titles that set it apart most (class-based TF-IDF over the plotted
  rows' titles), every row labelled by its nearest cluster centre.

Memory: a label code per row (2 bytes) and the titles of the plotted rows only.
"""
from __future__ import annotations

import collections
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..finalize.row_records import row_records, text_field
from ..rundir.job import JobRecord

CATEGORY_FIELD = "categories"
TITLE_FIELD = "title"
MAX_LABELS = 24
NOISE = -1
WORDS_PER_LABEL = 3
ROWS_PER_CLUSTER = 50
WORD = re.compile(r"[a-z][a-z0-9-]{2,}")
STOP_WORDS = frozenset("""
a about above after again against all also an and any are as at be been before being below
between both but by can could did do does doing down during each few for from further had has
have having here how if in into is it its itself just more most no nor not now of off on once
only or other our out over own same should so some such than that the their them then there
these they this those through to too under until up very via was we were what when where which
while who whom why will with within without would you your using use based new study studies
results approach method methods analysis towards toward one two three first second paper note
case cases general some their non its certain
""".split())


@dataclass
class Labels:
    codes: np.ndarray           # (N,) int16: index into names, NOISE = unlabelled
    names: list[str]
    source: str                 # "categories", "title keywords" or "none"


def archive_of(categories) -> str | None:
    """"hep-ph astro-ph.CO" -> "hep-ph"; "math.CO" -> "math"."""
    if not isinstance(categories, str) or not categories.split():
        return None
    return categories.split()[0].split(",")[0].split(".")[0] or None


def read_fields(h5_path: Path, job: JobRecord, units, rows: int,
                plot_rows: np.ndarray) -> tuple[np.ndarray, list[str], list[str | None]]:
    """(category code per row (NOISE where none), category names, titles of `plot_rows`)."""
    codes = np.full(rows, NOISE, dtype=np.int32)
    names: dict[str, int] = {}
    is_plot = np.zeros(rows, bool)
    is_plot[plot_rows] = True
    titles: list[str | None] = []
    row = 0
    try:
        for row, record in enumerate(row_records(h5_path, job, (TITLE_FIELD, CATEGORY_FIELD),
                                                 units)):
            category = archive_of(record.get(CATEGORY_FIELD))
            if category is not None:
                codes[row] = names.setdefault(category, len(names))
            if is_plot[row]:
                titles.append(text_field(record, TITLE_FIELD))
    except UserError as exc:
        print(f"ray-embed: the map's labels stop at row {row:,} ({exc})", file=sys.stderr)
    titles += [None] * (len(plot_rows) - len(titles))
    return codes, list(names), titles


def by_categories(codes: np.ndarray, names: list[str]) -> Labels:
    """The MAX_LABELS most common categories; the others unlabelled."""
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    kept = np.argsort(-counts, kind="stable")[:MAX_LABELS]
    kept = kept[counts[kept] > 0]
    remap = np.full(len(names) + 1, NOISE, dtype=np.int16)
    remap[kept] = np.arange(len(kept), dtype=np.int16)
    return Labels(remap[codes], [names[i] for i in kept], "categories")


def by_keywords(coords: np.ndarray, plot_rows: np.ndarray,
                titles: list[str | None]) -> Labels:
    """Clusters of the plotted rows' positions, named by their titles' distinctive words."""
    import faiss

    if not any(titles):
        return Labels(np.full(len(coords), NOISE, np.int16), [], "none")
    k = int(np.clip(len(plot_rows) // ROWS_PER_CLUSTER, 2, MAX_LABELS))
    points = np.ascontiguousarray(coords[plot_rows], dtype=np.float32)
    kmeans = faiss.Kmeans(2, k, niter=25, seed=1, min_points_per_centroid=1)
    kmeans.train(points)
    _, assigned = kmeans.index.search(points, 1)
    names = cluster_keywords(assigned[:, 0], titles, k)
    _, nearest = kmeans.index.search(np.ascontiguousarray(coords, dtype=np.float32), 1)
    codes = nearest[:, 0].astype(np.int16)
    return Labels(codes, names, "title keywords")


def cluster_keywords(clusters: np.ndarray, titles: list[str | None], k: int) -> list[str]:
    """Class-based TF-IDF: a word's share of its cluster's words, times
    log(1 + mean words per cluster / the word's count over all clusters)."""
    counts = [collections.Counter() for _ in range(k)]
    for cluster, title in zip(clusters, titles, strict=True):
        if title:
            counts[cluster].update(w for w in WORD.findall(title.lower()) if w not in STOP_WORDS)
    total = collections.Counter()
    for counter in counts:
        total.update(counter)
    mean_words = sum(total.values()) / k or 1.0
    names = []
    for cluster, counter in enumerate(counts):
        size = sum(counter.values()) or 1
        score = {w: (n / size) * math.log(1 + mean_words / total[w]) for w, n in counter.items()}
        best = sorted(score, key=lambda w: (-score[w], w))[:WORDS_PER_LABEL]
        names.append(", ".join(best) or f"cluster {cluster + 1}")
    return names


def row_labels(h5_path: Path, job: JobRecord, units, coords: np.ndarray,
               plot_rows: np.ndarray) -> Labels:
    codes, names, titles = read_fields(h5_path, job, units, len(coords), plot_rows)
    if (codes >= 0).mean() >= 0.5:
        return by_categories(codes, names)
    return by_keywords(coords, plot_rows, titles)
