"""map/map.png: the map drawn by datamapplot, the plotted rows coloured and labelled by
their labels (labels.py); map/map-*.png: the same map, each row in a colour of its own
(`draw_colours`: colouring.py says which), with a legend or colour bar, no text labels.
At most PLOT_POINTS rows are drawn (evenly spaced over the run), so the picture costs the
same at 2.7M rows as at 200k. Fonts: the system's (datamapplot would otherwise fetch Google
fonts over the network)."""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..extras import require
from .labels import NOISE, Labels

PLOT_POINTS = 200_000
NOISE_LABEL = "Unlabelled"
FONT = "DejaVu Sans"              # ships with matplotlib
DPI = 100


def _pyplot():
    matplotlib = require("matplotlib", "map")
    matplotlib.use("Agg")
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)  # no weight 900
    import matplotlib.pyplot as plt

    return plt


def draw(path: Path, coords: np.ndarray, labels: Labels, plot_rows: np.ndarray,
         title: str, sub_title: str) -> None:
    plt = _pyplot()
    datamapplot = require("datamapplot", "map")

    names = np.array(labels.names + [NOISE_LABEL], dtype=object)
    codes = labels.codes[plot_rows]
    point_labels = names[np.where(codes == NOISE, len(labels.names), codes)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig, _ = datamapplot.create_plot(
            coords[plot_rows], point_labels, title=title, sub_title=sub_title,
            noise_label=NOISE_LABEL, use_system_fonts=True, font_family=FONT,
            figsize=(12, 12), dpi=DPI, label_wrap_width=16, add_glow=False)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)


def draw_colours(path: Path, coords: np.ndarray, colours: np.ndarray, title: str,
                 sub_title: str, key: Callable) -> None:
    """`coords` (drawn in this order: the last on top) in `colours` (one "#rrggbb" each);
    `key(fig, ax)` adds the legend or colour bar saying what the colours mean."""
    plt = _pyplot()
    datamapplot = require("datamapplot", "map")

    unlabelled = np.full(len(coords), NOISE_LABEL, dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig, ax = datamapplot.create_plot(
            coords, unlabelled, title=title, sub_title=sub_title, noise_label=NOISE_LABEL,
            label_color_map={}, marker_color_array=colours, use_system_fonts=True,
            font_family=FONT, figsize=(12, 12), dpi=DPI, add_glow=False)
        key(fig, ax)
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
