"""How big the corpus is, and what a doc of it costs the data path (measured on a sample)."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..read.inputs import SqlSpec, plan_units, resolve_inputs
from ..read.text import TextTemplate

SAMPLE_BLOCK_BYTES = 64 * 2**20


@dataclass(frozen=True)
class Corpus:
    rows: int | None
    rows_how: str                    # exact | estimated | counted | given | unknown
    sample_rows: int                 # rows read from the start of the inputs
    sample_rejected: int
    tokens_per_doc: float
    tokens_p95: float
    data_path_cpu_s_per_doc: float   # read + text + tokenize, in this process
    sample_token_lengths: np.ndarray


def corpus_rows(files, sql: SqlSpec | None) -> tuple[int | None, str]:
    """Rows of the inputs: exact for Parquet and JSON arrays, estimated from the mean line
    size for plain JSONL, counted by streaming a compressed file, unknown for DuckDB."""
    from ..read.estimate import estimate_total_rows

    total, how = 0, "exact"
    for f in files:
        units = plan_units([f], SAMPLE_BLOCK_BYTES, None, sql)
        if f.format == "duckdb":
            return None, "unknown"
        if f.compression and f.format == "jsonl" and units and units[0].end is None:
            total += count_lines(f.path, f.compression)
            how = "counted" if how == "exact" else how
            continue
        rows = estimate_total_rows(units)
        if rows is None:
            return None, "unknown"
        total += rows
        if f.format == "jsonl":
            how = "estimated"
    return total, how


def count_lines(path: str, compression: str) -> int:
    from ..read.decompress import open_decompressed

    lines = 0
    with open_decompressed(path, compression) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            lines += chunk.count(b"\n")
    return lines


def sample_corpus(cfg, info, encode, sample_docs: int, rows_given: int | None = None) -> Corpus:
    """Read and tokenize the first `sample_docs` rows with the job's own code; `encode`: texts
    -> token ids (the tokenize tasks' function)."""
    from ..read.sources import rows_from_unit
    from ..read.text import text_byte_cap

    spec = cfg.spec
    files = resolve_inputs(spec.inputs)
    sql = SqlSpec(spec.id_field, spec.table, spec.query)
    template = TextTemplate(spec.text, info.sep_token, spec.clean_whitespace,
                            spec.on_missing_field, text_byte_cap(info.max_seq_length))
    cpu = time.process_time()
    lengths, rejected = [], 0
    for unit in plan_units(files, SAMPLE_BLOCK_BYTES, sample_docs, sql):
        got = rows_from_unit(unit, template, spec.id_field)
        rejected += len(got.rejects)
        texts = got.table.column("text").to_pylist()[: sample_docs - len(lengths)]
        lengths.extend(len(ids) for ids in encode(texts))
        if len(lengths) >= sample_docs:
            break
    cpu = time.process_time() - cpu
    if not lengths:
        from ..errors import UserError

        raise UserError("no row of the inputs could be embedded (every sampled row was rejected)")
    rows, how = (rows_given, "given") if rows_given else corpus_rows(files, sql)
    array = np.array(lengths)
    return Corpus(rows, how, len(lengths), rejected, float(array.mean()),
                  float(np.percentile(array, 95)), cpu / len(lengths), array)
