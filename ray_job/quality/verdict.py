"""The verdict: the quality section's measures against stated thresholds, as a list of
problems and one line. A problem never fails the run (the data is what the model made), it
tells the user before they ship it.

Thresholds and what they mean:

* COLLAPSED_COSINE: the mean cosine of two random papers at or above 0.95 means the vectors
  all point one way; search and clustering over them see little but noise.
* IDENTICAL_SHARE: 1% or more of the rows sharing their exact vector with a different text
  means the model cannot tell those texts apart (one token read, or every text cut to the
  same first words).
* MIN_LIFT and MIN_GAIN: k-NN label agreement under 1.5x the share a random neighbour gives,
  or under it plus 0.05, means the neighbours know no more about a paper's field than chance.
* CUT_SHARE: half the texts or more reaching the max length means their ends (for papers,
  most of the abstract) were not embedded.
"""
from __future__ import annotations

COLLAPSED_COSINE = 0.95
IDENTICAL_SHARE = 0.01
MIN_LIFT = 1.5
MIN_GAIN = 0.05
CUT_SHARE = 0.5

THRESHOLDS = {"collapsed_mean_cosine": COLLAPSED_COSINE, "identical_share": IDENTICAL_SHARE,
              "min_label_lift": MIN_LIFT, "min_label_gain": MIN_GAIN,
              "cut_share": CUT_SHARE}


def problems(section: dict) -> list[str]:
    """What the section's measures say is wrong, one phrase each."""
    found = []
    cosine = section.get("mean_cosine")
    if cosine is not None and cosine >= COLLAPSED_COSINE:
        found.append(f"collapsed: two random papers have mean cosine {cosine:.3f} "
                     f"(>= {COLLAPSED_COSINE})")
    identical = section.get("identical_vectors") or {}
    rows = section.get("rows") or 0
    if rows and identical.get("rows", 0) / rows >= IDENTICAL_SHARE:
        found.append(f"{identical['rows']:,} papers ({identical['rows'] / rows:.1%}) share "
                     f"their exact vector with a different text")
    labels = section.get("labels") or {}
    if labels.get("agreement") is not None:
        agreement, random = labels["agreement"], labels["random"]
        if agreement < MIN_LIFT * random or agreement < random + MIN_GAIN:
            found.append(f"label agreement {agreement:.3f} is no better than random "
                         f"({random:.3f}; wanted >= {MIN_LIFT}x and +{MIN_GAIN})")
    cut = section.get("cut_by_max_length") or {}
    if cut.get("share") is not None and cut["share"] >= CUT_SHARE:
        found.append(f"{cut['share']:.1%} of the texts reached the max length "
                     f"({cut['max_tokens']} tokens): their ends were not embedded")
    return found


def verdict_line(section: dict) -> str:
    """One line: the problems, or what says the vectors look sound."""
    found = section.get("problems") or []
    if found:
        return "quality: WARNING: " + "; ".join(found)
    parts = []
    labels = section.get("labels") or {}
    if labels.get("agreement") is not None:
        parts.append(f"label agreement@{labels['k']} {labels['agreement']:.2f} vs "
                     f"{labels['random']:.2f} random ({labels['field']})")
    if section.get("mean_cosine") is not None:
        parts.append(f"mean cosine {section['mean_cosine']:.2f}")
    return "quality: ok" + (f" ({', '.join(parts)})" if parts else "")
