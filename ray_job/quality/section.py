"""The quality section of report.json, made from what the quality pass measured (tap.py),
the sampled rows' labels read again (sample_fields.py) and the model's random-text cosine
(baseline.py), with its verdict (verdict.py)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py

from ..finalize.row_records import text_field
from ..read.plan import ReadPlan
from ..rundir.job import JobRecord
from .labels import candidate_fields, chosen_field, label_of
from .neighbours import Agreement, label_agreement
from .sample import STRETCHES
from .sample_fields import sample_records
from .sample_file import SampleFile
from .tap import Measured
from .verdict import THRESHOLDS, problems, verdict_line

TITLE_FIELD = "title"


def quality_section(measured: Measured, job: JobRecord, plan: ReadPlan | None,
                    h5: Callable[[], Path], baseline: float | None) -> tuple[dict, SampleFile]:
    """(report.json's `quality`, the sample with its labels and titles). `h5` gives a local
    embeddings.h5 (a remote run's is fetched): called only to name identical vectors' ids."""
    sample = measured.sample
    named = job.options.label_field
    fields = candidate_fields(named)
    records = sample_records(sample.rows, sample.keys, sample.ids, job.spec.id_field, plan,
                             (*fields, TITLE_FIELD))
    field = chosen_field({f: sum(r is not None and label_of(r, f) is not None for r in records)
                          for f in fields}, named)
    labels = [label_of(r, field) if r is not None and field else None for r in records]
    titles = [text_field(r, TITLE_FIELD) if r is not None else None for r in records]
    agreement = label_agreement(sample.vectors, labels)
    health = measured.health.summary()
    section = {
        "rows": measured.health.rows,
        **health,
        "random_text_cosine": None if baseline is None else round(baseline, 6),
        "identical_vectors": _identical(measured, h5),
        "sample": {"rows": len(sample.ids), "of_rows": measured.health.rows,
                   "stretches": STRETCHES if len(sample.ids) < measured.health.rows else 1,
                   "found_in_inputs": sum(r is not None for r in records)},
        "labels": _labels(field, named, labels, agreement),
        "thresholds": THRESHOLDS,
    }
    section["problems"] = problems(section)
    if named and agreement is None:
        section["problems"].append(f"--label-field {named}: too few sampled papers have "
                                   f"one to measure label agreement")
    section["verdict"] = verdict_line(section)
    return section, SampleFile(sample.rows, sample.ids, labels, titles, sample.vectors)


def _labels(field: str | None, named: str | None, labels: list,
            agreement: Agreement | None) -> dict:
    found = sum(label is not None for label in labels)
    if agreement is None:
        why = ("no label field in the input (arXiv categories, Semantic Scholar fields of "
               "study, or --label-field)" if field is None else
               f"{found} sampled papers labelled by {field!r}: too few, or one label only")
        return {"field": field, "named": bool(named), "labelled": found, "agreement": None,
                "why": why}
    return {"field": field, "named": bool(named), "labelled": found, **agreement.summary()}


def _identical(measured: Measured, h5: Callable[[], Path]) -> dict:
    found = measured.identical
    examples = []
    if found.examples:
        with h5py.File(h5(), "r") as f:
            ids = f["ids"]
            examples = [[ids[row].decode() for row in group] for group in found.examples]
    return {"rows": found.rows_shared, "vectors": found.groups,
            "same_text_copies": found.same_text_copies, "examples": examples}
