"""`ray-embed map --color`: the map's plotted rows coloured otherwise than by label, from the
map as it is (map/coords.arrow; no new layout), each colouring its own picture
(layout.MAP_COLOURED) recorded in map.json's `pictures` and `colourings`:

* `agreement`: each row's k-NN label agreement at 10 (agreement.py) on a continuous scale,
  unlabelled rows grey; at most AGREEMENT_POINTS rows, evenly spaced over the run;
* `duplicates`: rows in a near-duplicate component one colour per component, the rest light
  grey (duplicates.py); at most PLOT_POINTS rows.

Memory: per-row arrays of the plotted rows only.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..read.plan import frozen_plan
from ..rundir.layout import H5, MAP_COLOURED, MAP_INFO, MAP_PICTURE
from ..rundir.map_state import coords_of, stored_info
from ..rundir.rundir import RunDir
from . import layout2d, picture
from .agreement import AGREEMENT_POINTS, K, label_agreement
from .duplicates import NONE, components, dedup_info
from .labels import input_labels

GREY = "#cfcfcf"
COLOUR_MAP = "viridis"
GROUP_PALETTE = "tab20"


class NoLabels(UserError):
    """The run's input gives its papers no label to agree on."""


def check_ready(run_dir: RunDir, colour: str) -> None:
    """What a colouring needs that the map does not make, checked before the map is built."""
    if colour == "duplicates":
        dedup_info(run_dir, run_dir.results.local(H5))


def colour_map(run_dir: RunDir, colour: str) -> dict:
    """Draw the current map's `colour` picture and record it in map.json (last)."""
    info = stored_info(run_dir)
    h5 = run_dir.results.local(H5)
    name = MAP_COLOURED[colour]
    with tempfile.TemporaryDirectory(prefix="ray-embed-colour-") as tmp:
        png = Path(tmp) / "picture.png"
        summary = DRAWERS[colour](run_dir, h5, info, png)
        summary["picture"] = name
        info.setdefault("pictures", {"label": MAP_PICTURE})[colour] = name
        info.setdefault("colourings", {})[colour] = summary
        (Path(tmp) / "map.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        run_dir.results.put(png, name)
        run_dir.results.put(Path(tmp) / "map.json", MAP_INFO)
    return summary


def agreement_picture(run_dir: RunDir, h5: Path, info: dict, png: Path) -> dict:
    rows = layout2d.sample_rows(info["rows"], AGREEMENT_POINTS)
    found = input_labels(h5, run_dir.load_job(), frozen_plan(run_dir), info["rows"],
                         wanted=rows)
    if found.field is None or (found.codes >= 0).sum() < 2:
        where = f"field {found.field!r}" if found.field else (
            "arXiv `categories` or Semantic Scholar fields of study")
        raise NoLabels(f"no labels to agree on: the papers of {run_dir.url} have no {where}; "
                       f"name the input field that labels a paper with --label-field when "
                       f"running")
    result = label_agreement(h5, rows, found.codes)
    labelled = ~np.isnan(result.share)
    colours = np.full(len(rows), GREY, dtype=object)
    colours[labelled] = _hex(_colour_map(COLOUR_MAP)(result.share[labelled]))
    order = np.argsort(labelled, kind="stable")              # grey first, under the rest
    picture.draw_colours(
        png, coords_of(run_dir, rows[order]), colours[order],
        title=f"{info['rows']:,} papers: do their neighbours share their label?",
        sub_title=f"k-NN label agreement at {K} ({found.field}): mean {result.mean:.2f}, "
                  f"{result.chance:.2f} by chance; grey: no label",
        key=_colour_bar)
    return {"k": K, "field": found.field, "mean": round(result.mean, 4),
            "chance": round(result.chance, 4), "plotted": len(rows),
            "labelled": result.labelled}


def _colour_bar(fig, ax) -> None:
    import matplotlib as mpl

    bar = fig.colorbar(mpl.cm.ScalarMappable(mpl.colors.Normalize(0, 1),
                                             _colour_map(COLOUR_MAP)),
                       ax=ax, shrink=0.4, pad=0.01, ticks=[0, 0.5, 1])
    bar.ax.set_yticklabels([f"0: none of its {K} nearest\nshares its label", "0.5",
                            f"1: all {K} do"])


def duplicates_picture(run_dir: RunDir, h5: Path, info: dict, png: Path) -> dict:
    rows = layout2d.sample_rows(info["rows"], picture.PLOT_POINTS)
    found = components(run_dir, h5, rows)
    grouped = found.of_row != NONE
    groups, rank = np.unique(found.of_row[grouped], return_inverse=True)
    palette = _hex(_colour_map(GROUP_PALETTE)(np.arange(20)))
    colours = np.full(len(rows), GREY, dtype=object)
    colours[grouped] = palette[rank % len(palette)]
    order = np.argsort(grouped, kind="stable")
    at = f" (cosine >= {found.threshold:g})" if found.threshold is not None else ""
    picture.draw_colours(
        png, coords_of(run_dir, rows[order]), colours[order],
        title=f"{info['rows']:,} papers: near duplicates",
        sub_title=f"{int(grouped.sum()):,} of {len(rows):,} papers drawn lie in "
                  f"{len(groups):,} near-duplicate groups{at}, one colour per group",
        key=lambda fig, ax: _group_legend(ax, palette))
    return {"plotted": len(rows), "in_groups": int(grouped.sum()), "groups": len(groups),
            "threshold": found.threshold}


def _group_legend(ax, palette) -> None:
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=palette[0], label="a near-duplicate group (one colour "
                                                     "each)"),
                       Patch(color=GREY, label="no near duplicate")],
              loc="lower right", frameon=False)


def _colour_map(name: str):
    import matplotlib

    return matplotlib.colormaps[name]


def _hex(rgba: np.ndarray) -> np.ndarray:
    from matplotlib.colors import to_hex

    return np.array([to_hex(c) for c in rgba], dtype=object)


DRAWERS = {"agreement": agreement_picture, "duplicates": duplicates_picture}


def format_colouring(colour: str, summary: dict) -> str:
    if colour == "agreement":
        return (f"{summary['picture']}: k-NN label agreement at {summary['k']} by "
                f"{summary['field']}, mean {summary['mean']:.2f} ({summary['chance']:.2f} by "
                f"chance) over {summary['labelled']:,} labelled papers")
    return (f"{summary['picture']}: {summary['in_groups']:,} of {summary['plotted']:,} papers "
            f"drawn in {summary['groups']:,} near-duplicate groups")
