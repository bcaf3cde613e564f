"""The map a run holds (map/coords.arrow and map/map.json, written by ray_job/map/): whether it
is current (made from the run's embeddings.h5 as it is now: the fingerprint in map.json) and
its coordinates. Read here, below the stages, so that the exports add the map's columns to
the Parquet files without importing the map's builder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from .fingerprint import made_from
from .layout import H5, MAP_COORDS, MAP_INFO
from .rundir import RunDir


def stored_info(run_dir: RunDir) -> dict | None:
    if not (run_dir.results.has(MAP_INFO) and run_dir.results.has(MAP_COORDS)):
        return None
    return json.loads(run_dir.results.read_text(MAP_INFO))


def current_info(run_dir: RunDir, h5: Path | None = None) -> dict | None:
    """map.json when the map was made from the run's embeddings.h5 as it is now."""
    info = stored_info(run_dir)
    if info is None:
        return None
    h5 = h5 or run_dir.results.local(H5)
    return info if made_from(info, h5, run_dir.is_remote) else None


def read_coords(run_dir: RunDir) -> pa.Table:
    """map/coords.arrow: 10 bytes a row."""
    return ipc.open_file(str(run_dir.results.local(MAP_COORDS))).read_all()


def coords_of(run_dir: RunDir, rows) -> np.ndarray:
    """(len(rows), 2) float32: x and y of the given rows of map/coords.arrow, read through a
    memory map (only those rows are copied)."""
    with pa.memory_map(str(run_dir.results.local(MAP_COORDS))) as source:
        table = ipc.open_file(source).read_all().select(["x", "y"]).take(pa.array(rows))
        return np.column_stack([table.column("x").to_numpy(),
                                table.column("y").to_numpy()]).astype(np.float32)
