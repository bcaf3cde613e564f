"""`ray-embed similar RUN PAPER_ID`: the papers nearest to a paper of the corpus (itself
left out), from its own vector in embeddings.h5."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from ..errors import UserError
from ..rundir.rundir import RunDir
from .hits import Hit, make_hits
from .index import current_index, result_h5
from .search import nearest

ID_CHUNK = 1 << 20


def row_of(h5_path: Path, paper_id: str) -> int | None:
    """The row of `paper_id` in embeddings.h5 (ids are unique and stored exactly, with no
    NUL: numpy would compare `p1` and `p1\\0` equal), scanning ids in chunks."""
    if "\x00" in paper_id:
        return None
    wanted = paper_id.encode("utf-8", "surrogatepass")
    with h5py.File(h5_path, "r") as h5:
        ids = h5["ids"]
        for start in range(0, ids.shape[0], ID_CHUNK):
            found = np.flatnonzero(ids[start:start + ID_CHUNK] == wanted)
            if len(found):
                return start + int(found[0])
    return None


def similar(directory: str | Path, paper_id: str, k: int = 10) -> list[Hit]:
    run_dir = RunDir.at(directory)
    h5 = result_h5(run_dir)
    row = row_of(h5, paper_id)
    if row is None:
        raise UserError(f"paper {paper_id!r} is not in {run_dir.url}/embeddings.h5")
    with h5py.File(h5, "r") as f:
        vector = f["embeddings"][row].astype(np.float32)
    index = current_index(run_dir, h5)
    return make_hits(h5, *nearest(h5, index, vector, k, exclude=row),
                     index.titles if index else None)
