"""`ray-embed compare RUN_A RUN_B`: one corpus embedded two ways, side by side, on the papers
both runs sampled (quality/sample.arrow: two runs of one corpus sample the same rows, so
neither corpus is read again): each run's k-NN label agreement on those papers, how much
their neighbourhoods overlap (Jaccard of the k nearest), the papers whose neighbours differ
most (titles), and speed and size from each report. Papers of A's sample that B did not
sample are looked up in B's embeddings.h5 by id, in one pass over its ids."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import UserError
from ..rundir.layout import H5
from ..rundir.rundir import RunDir
from .neighbours import K, label_agreement, nearest
from .sample_file import SampleFile, read_sample

MIN_SHARED = 0.5          # of A's sampled papers B must hold: less is another corpus
SHOWN = 5                 # papers listed where the runs disagree most
NEIGHBOURS_SHOWN = 3
ID_CHUNK = 65536


@dataclass
class Pair:
    a: RunDir
    b: RunDir
    sample: SampleFile        # A's sample, restricted to the papers B holds
    b_vectors: np.ndarray     # B's vectors of those papers, in the same order


def compare_runs(a_location: str | Path, b_location: str | Path, shown: int = SHOWN) -> dict:
    pair = _paired(RunDir.at(a_location), RunDir.at(b_location))
    labels = pair.sample.labels
    near_a, near_b = nearest(pair.sample.vectors, K), nearest(pair.b_vectors, K)
    jaccard = _jaccard(near_a, near_b)
    worst = np.argsort(jaccard, kind="stable")[:shown]
    titles = pair.sample.titles
    return {
        "papers": len(labels),
        "k": near_a.shape[1],
        "runs": [_run_facts(run, label_agreement(vectors, labels))
                 for run, vectors in ((pair.a, pair.sample.vectors), (pair.b, pair.b_vectors))],
        "neighbour_overlap": {"mean_jaccard": round(float(jaccard.mean()), 4),
                              "median_jaccard": round(float(np.median(jaccard)), 4),
                              "share_identical": round(float((jaccard == 1).mean()), 4)},
        "disagreements": [{"id": pair.sample.ids[i], "title": titles[i],
                           "jaccard": round(float(jaccard[i]), 3),
                           "a_neighbours": _names(near_a[i], pair.sample),
                           "b_neighbours": _names(near_b[i], pair.sample)} for i in worst],
    }


def _finished(run: RunDir) -> RunDir:
    run.load_job()                       # not a run directory: one line
    if not run.load_report():
        raise UserError(f"{run.url} is not finished (no report.json yet): run or finalize "
                        f"it first")
    return run


def _paired(a: RunDir, b: RunDir) -> Pair:
    a, b = _finished(a), _finished(b)
    sample = read_sample(a)
    if sample is None:
        raise UserError(f"{a.url} has no quality sample (finalized before ray-embed measured "
                        f"quality): `ray-embed finalize` it again")
    wanted = {row_id: i for i, row_id in enumerate(sample.ids)}
    found = _from_sample(read_sample(b), wanted)
    if len(found) < len(wanted):
        found.update(_from_h5(b.results.local(H5), {k: v for k, v in wanted.items()
                                                    if v not in found}))
    keep = np.array(sorted(found), np.int64)
    if len(keep) < max(2 * K + 2, MIN_SHARED * len(wanted)):
        raise UserError(f"{b.url} holds {len(keep):,} of the {len(wanted):,} papers {a.url} "
                        f"sampled: compare needs two runs of the same corpus")
    part = SampleFile(sample.rows[keep], [sample.ids[i] for i in keep],
                      [sample.labels[i] for i in keep], [sample.titles[i] for i in keep],
                      sample.vectors[keep])
    return Pair(a, b, part, np.stack([found[i] for i in keep]))


def _from_sample(sample: SampleFile | None, wanted: dict[str, int]) -> dict[int, np.ndarray]:
    if sample is None:
        return {}
    return {wanted[row_id]: sample.vectors[j] for j, row_id in enumerate(sample.ids)
            if row_id in wanted}


def _from_h5(h5: Path, wanted: dict[str, int]) -> dict[int, np.ndarray]:
    """The vectors of the `wanted` ids (id -> A's sample position), one pass over the ids."""
    found: dict[int, np.ndarray] = {}
    with h5py.File(h5, "r") as f:
        ids, vectors = f["ids"], f["embeddings"]
        for start in range(0, ids.shape[0], ID_CHUNK):
            chunk = [i.decode() for i in ids[start:start + ID_CHUNK]]
            rows = [(start + j, wanted[row_id]) for j, row_id in enumerate(chunk)
                    if row_id in wanted]
            if rows:
                picked = vectors[[r for r, _ in rows]]
                found.update({pos: np.asarray(picked[n], np.float32)
                              for n, (_, pos) in enumerate(rows)})
    return found


def _jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(len(a))
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        shared = len(np.intersect1d(x, y))
        out[i] = shared / (len(x) + len(y) - shared)
    return out


def _names(rows: np.ndarray, sample: SampleFile) -> list[str]:
    return [sample.titles[r] or sample.ids[r] for r in rows[:NEIGHBOURS_SHOWN]]


def _run_facts(run: RunDir, agreement) -> dict:
    job, report = run.load_job(), run.load_report()
    facts = job.facts()
    return {"run": run.url, "model": facts["model"], "pooling": facts["pooling"],
            "max_tokens": facts["max tokens"], "dim": report.get("dim"),
            "precision": report.get("precision"), "device": report.get("device"),
            "label_agreement": None if agreement is None else agreement.summary(),
            "docs_per_s": report.get("docs_per_s"), "wall_s": report.get("wall_s"),
            "h5_bytes": run.store.sizes(H5).get(H5),
            "quality_verdict": (report.get("quality") or {}).get("verdict")}


def compare_lines(result: dict) -> list[str]:
    a, b = result["runs"]
    lines = [f"{result['papers']:,} papers sampled by both runs; k = {result['k']}",
             _row("", "A", "B"),
             _row("run", a["run"], b["run"]),
             _row("model", a["model"], b["model"]),
             _row("pooling, max tokens", f"{a['pooling']}, {a['max_tokens']}",
                  f"{b['pooling']}, {b['max_tokens']}"),
             _row("label agreement", _agreement(a), _agreement(b)),
             _row("docs/s (device, precision)", _speed(a), _speed(b)),
             _row("dim, embeddings.h5", _size(a), _size(b))]
    overlap = result["neighbour_overlap"]
    lines.append(f"neighbourhoods: mean Jaccard of the {result['k']} nearest "
                 f"{overlap['mean_jaccard']:.3f} (median {overlap['median_jaccard']:.3f}; "
                 f"{overlap['share_identical']:.0%} of papers with the same {result['k']})")
    if result["disagreements"]:
        lines.append("where they disagree most:")
    for paper in result["disagreements"]:
        lines.append(f"  {paper['title'] or paper['id']} (Jaccard {paper['jaccard']:.2f})")
        lines.append(f"    A: {' | '.join(paper['a_neighbours'])}")
        lines.append(f"    B: {' | '.join(paper['b_neighbours'])}")
    return lines


def _row(name: str, a: str, b: str) -> str:
    return f"{name:<28} {str(a):<40} {b}"


def _agreement(run: dict) -> str:
    found = run["label_agreement"]
    if found is None:
        return "n/a (no labels)"
    return f"{found['agreement']:.3f} (random {found['random']:.3f})"


def _speed(run: dict) -> str:
    rate = run["docs_per_s"]
    return f"{rate:,.1f} ({run['device']}, {run['precision']})" if rate else "n/a"


def _size(run: dict) -> str:
    size = run["h5_bytes"]
    return f"{run['dim']}, {size / 2**20:,.1f} MiB" if size else f"{run['dim']}, n/a"
