"""`ray-embed map RUN` (and `--map` on run / finalize): the run's map, in RUN/map/.

    map/coords.arrow   x, y and label of every row of embeddings.h5, in its row order
    map/map.png        the picture (datamapplot), coloured by label
    map/map-*.png      the same map coloured otherwise (`--color`: colouring.py)
    map/map.json       how it was made, the labels, the pictures it has (`pictures`:
                       colouring -> file) and the fingerprint of the embeddings.h5 it
                       was made from (written last)

Built again only when the vectors change: map.json holds the fingerprint of the
embeddings.h5 it was made from (rundir/fingerprint.py, as the index does), so a finalize
that writes the same vectors again keeps the map.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import UserError
from ..extras import check_extra
from ..read.plan import frozen_plan
from ..rundir.fingerprint import h5_fingerprint, local_stat
from ..rundir.job import now_iso
from ..rundir.layout import H5, MAP_COLOURED, MAP_COORDS, MAP_INFO, MAP_PICTURE
from ..rundir.map_state import current_info
from ..rundir.rundir import RunDir
from ..settings import MAP_SAMPLE  # rows UMAP is fitted on (the rest are placed near them)
from . import layout2d, picture
from .labels import Labels, row_labels

MIN_ROWS = 10
BATCH_ROWS = 65536


def build_map(run_dir: RunDir | str | Path, force: bool = False,
              sample: int = MAP_SAMPLE) -> dict:
    """Build RUN/map/ unless it is current; returns map.json's record plus `rebuilt`."""
    check_extra("map")
    run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir.at(run_dir)
    if sample < MIN_ROWS:
        raise UserError(f"--sample must be at least {MIN_ROWS}; got {sample}")
    h5 = run_dir.results.local(H5)
    if not force:
        info = current_info(run_dir, h5)
        if info is not None:
            return {**info, "rebuilt": False}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ray-embed-map-") as tmp:
        info = make_files(run_dir, h5, Path(tmp), sample)
        info.update(fingerprint=h5_fingerprint(h5), h5_stat=local_stat(h5, run_dir.is_remote),
                    built=now_iso(), build_s=round(time.monotonic() - started, 2))
        (Path(tmp) / "map.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        run_dir.results.put(Path(tmp) / "coords.arrow", MAP_COORDS)
        run_dir.results.put(Path(tmp) / "map.png", MAP_PICTURE)
        run_dir.results.put(Path(tmp) / "map.json", MAP_INFO)       # last: the map is current
        for stale in MAP_COLOURED.values():        # the former map's other colourings
            if run_dir.results.has(stale):
                run_dir.results.remove(stale)
    return {**info, "rebuilt": True}


def make_files(run_dir: RunDir, h5: Path, local: Path, sample: int) -> dict:
    job = run_dir.load_job()
    if _rows(h5) < MIN_ROWS:
        raise UserError(f"a map needs at least {MIN_ROWS} papers; {run_dir.url} has "
                        f"{_rows(h5)}")
    layout = layout2d.lay_out(h5, sample)
    plot_rows = layout2d.sample_rows(len(layout.coords), picture.PLOT_POINTS)
    units = frozen_plan(run_dir)     # each file checked against its manifest entry
    labels = row_labels(h5, job, units, layout.coords,
                        plot_rows)
    write_coords(local / "coords.arrow", layout.coords, labels)
    model = job.model.name
    picture.draw(local / "map.png", layout.coords, labels, plot_rows,
                 title=f"{len(layout.coords):,} papers",
                 sub_title=f"{model}, UMAP of {len(layout.sample_rows):,} rows; labels: "
                           f"{labels.source}")
    return {"rows": len(layout.coords), "sample": len(layout.sample_rows),
            "plotted": len(plot_rows), "labels": {"source": labels.source,
                                                  "names": labels.names},
            "umap": {"n_neighbors": min(layout2d.NEIGHBOURS, len(layout.sample_rows) - 1),
                     "metric": "cosine", "min_dist": 0.1, "random_state": layout2d.SEED,
                     "library": f"umap-learn {_version('umap-learn')}"},
            "picture": f"datamapplot {_version('datamapplot')}",
            "pictures": {"label": MAP_PICTURE}}


def _rows(h5: Path) -> int:
    import h5py

    with h5py.File(h5, "r") as f:
        return int(f["embeddings"].shape[0])


COORDS_SCHEMA = pa.schema([("x", pa.float32()), ("y", pa.float32()),
                           ("label", pa.dictionary(pa.int16(), pa.string()))])


def write_coords(path: Path, coords: np.ndarray, labels: Labels) -> None:
    names = pa.array(labels.names, pa.string())
    with ipc.new_file(str(path), COORDS_SCHEMA) as writer:
        for start in range(0, len(coords), BATCH_ROWS):
            part = coords[start:start + BATCH_ROWS]
            codes = labels.codes[start:start + BATCH_ROWS]
            label = pa.DictionaryArray.from_arrays(
                pa.array(codes, pa.int16(), mask=codes < 0), names)
            writer.write_table(pa.table({"x": part[:, 0], "y": part[:, 1], "label": label},
                                        schema=COORDS_SCHEMA))


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def format_build(info: dict) -> str:
    what = "built" if info["rebuilt"] else "up to date"
    line = (f"map {what}: {info['rows']:,} papers (UMAP fitted on {info['sample']:,}), labels "
            f"by {info['labels']['source']}")
    if info["rebuilt"]:
        line += f", {info['build_s']:.1f} s"
    return line


def map_summary(info: dict) -> dict:
    """What report.json says of the map."""
    return {"rows": info["rows"], "sample": info["sample"], "labels": info["labels"]["source"],
            "rebuilt": info["rebuilt"], "build_s": info.get("build_s")}
