"""The first texts of a corpus, rendered as the run renders them: what the precision is timed
on (`encode.calibrate`) and what `plan` measures a CPU replica with."""
from __future__ import annotations

from .inputs import InputFile, SqlSpec, plan_units
from .sources import rows_from_unit
from .text import TextTemplate

SAMPLE_BLOCK_BYTES = 1 << 20      # one read unit of 1 MiB: a few hundred arXiv papers


def first_texts(files: list[InputFile], template: TextTemplate, id_field: str, sql: SqlSpec,
                n: int) -> list[str]:
    """Up to `n` texts of the first rows of `files` (rows that would be rejected left out)."""
    texts: list[str] = []
    for unit in plan_units(files, SAMPLE_BLOCK_BYTES, n, sql):
        texts.extend(rows_from_unit(unit, template, id_field).table.column("text").to_pylist())
        if len(texts) >= n:
            break
    return texts[:n]
