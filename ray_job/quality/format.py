"""The quality section in words: the lines `ray-embed report` prints and the dataset card's
table. A section from a run before the quality pass is None: said so, never guessed."""
from __future__ import annotations


def quality_lines(section: dict | None, near: dict | None = None) -> list[str]:
    """The section's lines, the verdict last; `near`: report.json's `near_duplicates`
    (`ray-embed dedup`), when there is one."""
    near_line = [_near(near)] if near else []
    if not section:
        return near_line + ["quality: not measured (finalized before ray-embed measured "
                            "quality; `ray-embed finalize DIR` measures it)"]
    lines = []
    norms = section["norms"]
    lines.append(f"norms: min {norms['min']:.4f}, mean {norms['mean']:.4f}, max "
                 f"{norms['max']:.4f}" + (f"; {norms['zero_vectors']:,} zero vectors"
                                          if norms["zero_vectors"] else ""))
    lines.append(_anisotropy(section))
    same = section["identical_vectors"]
    line = (f"identical vectors for different texts: {same['rows']:,} papers "
            f"({same['vectors']:,} vectors)")
    if same["examples"]:
        line += "; e.g. " + "; ".join(" = ".join(group) for group in same["examples"])
    if same["same_text_copies"]:
        line += f"; {same['same_text_copies']:,} repeat an earlier paper's text under another id"
    lines.append(line)
    cut = section["cut_by_max_length"]
    if cut["share"] is not None:
        lines.append(f"cut by the max length ({cut['max_tokens']} tokens): {cut['rows']:,} of "
                     f"{cut['of_rows']:,} texts ({cut['share']:.1%})")
    lines.append(_labels(section["labels"], section["sample"]))
    return lines + near_line + [section["verdict"]]


def _near(near: dict) -> str:
    return (f"near-duplicates at cosine >= {near['threshold']:g}: {near['pairs']:,} pairs in "
            f"{near['components']:,} groups, {near['dropped']:,} papers to drop "
            f"({near['keep']})")


def _anisotropy(section: dict) -> str:
    cosine, random = section["mean_cosine"], section["random_text_cosine"]
    line = "mean cosine of two random papers: " + ("n/a" if cosine is None else f"{cosine:.3f}")
    if random is not None:
        line += f" (the model's random text: {random:.3f})"
    else:
        line += " (the model's random text: not measured)"
    return line


def _labels(labels: dict, sample: dict) -> str:
    if labels.get("agreement") is None:
        return f"label agreement: not measured ({labels['why']})"
    return (f"label agreement@{labels['k']} ({labels['field']}, {labels['papers']:,} sampled "
            f"papers, {labels['labels']} labels): {labels['agreement']:.3f} against "
            f"{labels['random']:.3f} for a random neighbour ({labels['lift']:.1f}x)")


def quality_markdown(section: dict | None, near: dict | None = None) -> str:
    """The card's quality section ("" without one)."""
    if not section:
        return ""
    rows = "\n".join(f"- {line}" for line in quality_lines(section, near)[:-1])
    return f"## Quality\n\n{rows}\n\n**{section['verdict']}**\n"
