"""A label for every row of the map, read again from the run's inputs (one pass):

* by the input's labels when most rows have one: the job's `--label-field`, else arXiv
  `categories` or Semantic Scholar fields of study (quality/labels.py says which field and
  how a value becomes a label), the MAX_LABELS most common kept, the rest unlabelled;
* else by clusters of the map: k-means on the plotted rows' positions, each cluster named by
  the three words of its titles that set it apart most (class-based TF-IDF over the plotted
  rows' titles), every row labelled by its nearest cluster centre.

Memory: a label code per row (2 bytes) for each candidate field that gives any label (one,
in practice), at most MAX_NAMES distinct labels, and the titles of the plotted rows only. The
colourings read the labels of their plotted rows only (`input_labels` with `wanted`).
"""
from __future__ import annotations

import collections
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..finalize.row_records import row_records, text_field
from ..quality.labels import candidate_fields, chosen_field, label_of
from ..rundir.job import JobRecord

TITLE_FIELD = "title"
MAX_LABELS = 24
MAX_NAMES = 32_000           # distinct labels kept (int16 codes); later new ones: unlabelled
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
    source: str                 # the input's field, "title keywords" or "none"


@dataclass
class InputLabels:
    """The labels the input gives the rows asked for (`input_labels`)."""
    field: str | None           # the field that labels (None: no field gave any label)
    codes: np.ndarray           # int16 per row asked for: index into names, NOISE = none
    names: list[str]
    titles: list[str | None] = field(default_factory=list)   # of the rows `titles_of`


class FieldCodes:
    """One field's label codes for the rows asked for, the names they index."""

    def __init__(self, size: int):
        self.size = size
        self.codes: np.ndarray | None = None     # made at the field's first label
        self.names: dict[str, int] = {}
        self.found = 0

    def add(self, slot: int, label: str) -> None:
        code = self.names.get(label)
        if code is None and len(self.names) < MAX_NAMES:
            code = self.names[label] = len(self.names)
        if code is not None:
            if self.codes is None:
                self.codes = np.full(self.size, NOISE, dtype=np.int16)
            self.codes[slot] = code
            self.found += 1


class Slots:
    """Where a row's label goes: at the row itself (every row asked for, `wanted` None), or
    at its position in the sorted row numbers `wanted` (None: not asked for). Rows come in
    increasing order."""

    def __init__(self, wanted: np.ndarray | None):
        self.wanted, self.at = wanted, 0

    def of(self, row: int) -> int | None:
        if self.wanted is None:
            return row
        while self.at < len(self.wanted) and self.wanted[self.at] < row:
            self.at += 1
        found = self.at < len(self.wanted) and self.wanted[self.at] == row
        return self.at if found else None

    def past_the_last(self, row: int) -> bool:
        return self.wanted is not None and (not len(self.wanted) or row > self.wanted[-1])


def input_labels(h5_path: Path, job: JobRecord, units, rows: int,
                 wanted: np.ndarray | None = None,
                 titles_of: np.ndarray | None = None) -> InputLabels:
    """The input's label of every row (`wanted` None) or of the sorted rows `wanted`, and
    the titles of the sorted rows `titles_of`; one pass over the inputs."""
    named = job.options.label_field
    fields = candidate_fields(named)
    size = rows if wanted is None else len(wanted)
    per_field = {f: FieldCodes(size) for f in fields}
    is_title = np.zeros(rows if titles_of is not None else 0, bool)
    if titles_of is not None:
        is_title[titles_of] = True
    titles: list[str | None] = []
    slots = Slots(wanted)
    row = 0
    try:
        for row, record in enumerate(row_records(h5_path, job, (TITLE_FIELD, *fields),
                                                 units)):
            if len(is_title) and is_title[row]:
                titles.append(text_field(record, TITLE_FIELD))
            if titles_of is None and slots.past_the_last(row):
                break
            slot = slots.of(row)
            if slot is None:
                continue
            for name, codes in per_field.items():
                label = label_of(record, name)
                if label is not None:
                    codes.add(slot, label)
    except UserError as exc:
        print(f"ray-embed: the map's labels stop at row {row:,} ({exc})", file=sys.stderr)
    if titles_of is not None:
        titles += [None] * (len(titles_of) - len(titles))
    chosen = chosen_field({f: c.found for f, c in per_field.items()}, named)
    codes = per_field[chosen].codes if chosen is not None else None
    if codes is None:                          # no field, or the named one, gave a label
        return InputLabels(chosen, np.full(size, NOISE, np.int16), [], titles)
    return InputLabels(chosen, codes, list(per_field[chosen].names), titles)


def by_categories(codes: np.ndarray, names: list[str], source: str) -> Labels:
    """The MAX_LABELS most common labels; the others unlabelled."""
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    kept = np.argsort(-counts, kind="stable")[:MAX_LABELS]
    kept = kept[counts[kept] > 0]
    remap = np.full(len(names) + 1, NOISE, dtype=np.int16)
    remap[kept] = np.arange(len(kept), dtype=np.int16)
    return Labels(remap[codes], [names[i] for i in kept], source)


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
    found = input_labels(h5_path, job, units, len(coords), titles_of=plot_rows)
    if found.field is not None and (found.codes >= 0).mean() >= 0.5:
        return by_categories(found.codes, found.names, found.field)
    return by_keywords(coords, plot_rows, found.titles)
