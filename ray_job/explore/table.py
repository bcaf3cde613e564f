"""The table Embedding Atlas shows: one row per paper of embeddings.h5, from the run's own
files (local, or a URL's cached copies), in the order a user reads them: id, title, label
(the map's label: the input's, as quality/labels.py reads it, for its MAX_LABELS most common
values, else the map's keyword clusters), url, the map's x and y (map/, built first when it
is missing or stale), up to NEIGHBOURS_UP_TO papers each paper's nearest neighbours (cosine,
faiss over the vectors), and last the row number Embedding Atlas identifies rows by (ROW_ID,
hidden in the view: serve.py).

Titles come from the index's titles.arrow when the index is current, else from the inputs
read again. Memory: the table itself (pandas, in the process that serves it).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import UserError
from ..finalize.row_records import row_records, text_field
from ..map import layout2d
from ..map.build import build_map, format_build
from ..read.plan import frozen_plan
from ..rundir.layout import H5
from ..rundir.map_state import read_coords
from ..rundir.rundir import RunDir

ROW_ID = "__row_index__"
LABEL = "label"
NEIGHBOURS = 10
NEIGHBOURS_UP_TO = 200_000
CHUNK_ROWS = 65536


@dataclass
class ExploreTable:
    frame: pd.DataFrame
    labels: list[dict]           # {x, y, text}: where each map label sits
    neighbours: bool             # whether the frame has a neighbours column
    fingerprint: str


def titles(run_dir: RunDir, h5: Path, rows: int) -> list[str | None]:
    from ..search.index import current_index

    index = current_index(run_dir, h5)
    if index is not None and index.titles is not None:
        from ..search.titles import read_titles

        return read_titles(index.titles, list(range(rows)))
    units = frozen_plan(run_dir)     # each file checked against its manifest entry
    found: list[str | None] = []
    try:
        job = run_dir.load_job()
        found = [text_field(r, "title") for r in row_records(h5, job, ("title",), units)]
    except UserError as exc:
        print(f"ray-embed: some titles are missing ({exc})", file=sys.stderr)
    return found + [None] * (rows - len(found))


def nearest_neighbours(h5: Path) -> list[dict]:
    """Per row: {"ids": row numbers of its NEIGHBOURS nearest others, "distances": 1 - cosine}."""
    with h5py.File(h5, "r") as f:
        vectors = layout2d.unit(f["embeddings"][:])
    index = layout2d.neighbour_index(vectors)
    k = min(NEIGHBOURS + 1, len(vectors))
    found = []
    for start in range(0, len(vectors), CHUNK_ROWS):
        distances, rows = layout2d.neighbours(index, vectors[start:start + CHUNK_ROWS], k)
        for own, (d, r) in enumerate(zip(distances, rows, strict=True), start):
            keep = r != own
            found.append({"ids": r[keep][:NEIGHBOURS].tolist(),
                          "distances": d[keep][:NEIGHBOURS].tolist()})
    return found


def label_places(frame: pd.DataFrame) -> list[dict]:
    """Each label at the median position of its papers."""
    places = frame.dropna(subset=[LABEL]).groupby(LABEL, observed=True)[
        ["map_x", "map_y"]].median()
    return [{"x": float(x), "y": float(y), "text": str(name)}
            for name, (x, y) in places.iterrows()]


def explore_table(run_dir: RunDir) -> ExploreTable:
    h5 = run_dir.results.local(H5)
    info = build_map(run_dir)
    if info["rebuilt"]:
        print(format_build(info))
    coords = read_coords(run_dir)
    with h5py.File(h5, "r") as f:
        ids = [i.decode() for i in f["ids"][:]]
        urls = [u.decode() for u in f["urls"][:]] if "urls" in f else None
    frame = pd.DataFrame({"id": ids, "title": titles(run_dir, h5, len(ids)),
                          LABEL: coords.column("label").to_pylist()})
    if urls is not None:
        frame["url"] = urls
    frame["map_x"] = coords.column("x").to_numpy()
    frame["map_y"] = coords.column("y").to_numpy()
    with_neighbours = len(frame) <= NEIGHBOURS_UP_TO
    if with_neighbours:
        frame["neighbors"] = nearest_neighbours(h5)
    else:
        print(f"ray-embed: nearest neighbours are left out of the view above "
              f"{NEIGHBOURS_UP_TO:,} papers (`ray-embed similar` finds them)", file=sys.stderr)
    frame[ROW_ID] = np.arange(len(frame))
    return ExploreTable(frame, label_places(frame), with_neighbours, info["fingerprint"])

