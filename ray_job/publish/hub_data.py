"""What the Hub's dataset viewer and `datasets.load_dataset` read of a published run: its
Parquet export (id, url, embedding, and the map's columns when it has a map), declared in
the dataset card's `configs:` so that nothing else in the repo (HDF5, the index's and the
map's Arrow files, a Lance table) is taken for data. A run published to the Hub without a
Parquet export gets one first.

The Hub reads the card at the root of the repo: a run published under a path
(hf://datasets/OWNER/NAME/runs/w47) carries paths from the root, right where its own card
is copied to the root, and loads with `load_dataset(REPO, data_files="runs/w47/parquet/*")`.
"""
from __future__ import annotations

import sys

from ..rundir.layout import H5, MAP_PICTURE, PARQUET, PARQUET_GLOB
from ..rundir.rundir import RunDir


def ensure_parquet(run_dir: RunDir) -> None:
    if run_dir.results.names(PARQUET):
        return
    from ..finalize.exports import export_parquet

    print("ray-embed: writing the Parquet export first (what the Hub's viewer and "
          "datasets.load_dataset read)", file=sys.stderr)
    export_parquet(run_dir.results.local(H5), run_dir)


def data_path(prefix: str) -> str:
    """The Parquet files' pattern from the root of the repo."""
    return f"{prefix}/{PARQUET}/{PARQUET_GLOB}" if prefix else f"{PARQUET}/{PARQUET_GLOB}"


def configs_yaml(run_dir: RunDir, prefix: str = "") -> str:
    """The card's `configs:` block (YAML front matter lines), or "" without a Parquet export."""
    if not run_dir.results.names(PARQUET):
        return ""
    return ("configs:\n- config_name: default\n  data_files:\n  - split: train\n"
            f"    path: \"{data_path(prefix)}\"\n")


def card_sections(run_dir: RunDir, prefix: str = "") -> str:
    """The card's map picture and the `datasets` recipe, where the run has them."""
    parts = []
    if run_dir.results.has(MAP_PICTURE):
        parts.append(f"## The map\n\n![the papers laid out in 2-D with UMAP]({MAP_PICTURE})\n\n"
                     "`map/coords.arrow` (and the Parquet files' `map_x`, `map_y`, "
                     "`map_label`) hold every paper's place.\n")
    if run_dir.results.names(PARQUET):
        where = f', data_files="{data_path(prefix)}"' if prefix else ""
        parts.append("## With `datasets`\n\n```python\nfrom datasets import load_dataset\n"
                     f'papers = load_dataset("OWNER/NAME"{where}, split="train")   '
                     "# id, embedding, ...\n```\n")
    return "\n".join(parts)
