"""The job's read stage, resume bookkeeping and finalizer, driven without Ray: the real
planner, readers, read-stage rows and rejects, shard files and finalizer, with the encoder
replaced by a vector made from each row's text hash (so a vector out of place shows). An
attempt can stop anywhere: after any unit's reads record, with only some of its rows in
shards (as a killed driver leaves it); the next attempt resumes the way a driver does
(read/resume.py)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa

from ray_job.encode.encoder import embedding_array
from ray_job.finalize.merge import MergeSpec, finalize
from ray_job.read.inputs import plan_units, resolve_inputs
from ray_job.read.resume import resume_fields, unit_done_keys, units_to_read
from ray_job.read.sources import rows_from_unit
from ray_job.read.text import TextTemplate, reads_record
from ray_job.rundir.job import JobRecord, ModelInfo
from ray_job.rundir.rundir import RunDir

SEP = " [SEP] "
TEMPLATE = TextTemplate("{title}{sep}{abstract}", SEP)
DIM = 4


def record_of(cfg) -> JobRecord:
    """The run record of a simulated run of `cfg` (no model is loaded: its facts are made up)."""
    info = ModelInfo("sim", "/models/sim", "transformers", "/models/sim", 128, "[SEP]", 0, 8,
                     "cls", False)
    return JobRecord.new(cfg, info, {"weights": "sha256:sim"}, "cpu", "fp32")


def fake_vectors(text_hashes: np.ndarray) -> np.ndarray:
    """A vector per text hash: 4 float32s from its 16-bit words."""
    h = np.asarray(text_hashes, dtype=np.uint64)
    words = [(h >> np.uint64(16 * i)) & np.uint64(0xFFFF) for i in range(DIM)]
    return (np.stack(words, axis=1).astype(np.float32) + 1) / 65536


def plan(inputs: Path, block_bytes: int, limit: int | None = None) -> list:
    return plan_units(resolve_inputs([str(inputs)]), block_bytes, limit)


def attempt(run_dir: RunDir, units: list, rng: random.Random, shard_rows: int,
            stop_after: int | None = None) -> None:
    """One driver's attempt: the units not finished yet, read and 'encoded' in shards of
    `shard_rows`; with `stop_after`, it is killed after that many units: the last one read
    whole (reads record written) but only some of its rows in shards."""
    todo, done_shards = units_to_read(run_dir, units, None)
    for n, (unit, shards) in enumerate(zip(todo, done_shards, strict=True)):
        done = unit_done_keys(unit, (run_dir.shards.read(s, ["key"]).column("key").to_numpy()
                                     for s in shards))
        rows = rows_from_unit(unit, TEMPLATE, "id", done)
        run_dir.rejects.write_unit(unit.name, rows.rejects)
        run_dir.reads.write_unit(unit.name, {**reads_record(rows.seen, rows.capped, None),
                                             **resume_fields(unit, len(rows.rejects), 0, None)})
        killed = stop_after is not None and n == stop_after
        table = rows.table
        if killed and table.num_rows:
            table = table.slice(0, rng.randrange(table.num_rows))
        write_shards(run_dir, table, shard_rows, rng)
        if killed:
            return


def write_shards(run_dir: RunDir, table: pa.Table, shard_rows: int, rng: random.Random) -> None:
    for start in range(0, table.num_rows, shard_rows):
        part = table.slice(start, shard_rows)
        run_dir.shards.write(shard_table(part))
        if rng.random() < 0.1:                   # a retried block written again, maybe cut
            run_dir.shards.write(shard_table(part.slice(0, max(1, part.num_rows - 1))))


def shard_table(rows: pa.Table) -> pa.Table:
    n = rows.num_rows
    hashes = rows.column("text_hash").to_numpy()
    return pa.table({"key": rows.column("key"), "id": rows.column("id"),
                     "embedding": embedding_array(fake_vectors(hashes)),
                     "text_hash": rows.column("text_hash"),
                     "n_tokens": np.full(n, 3, np.int32), "n_computed": np.full(n, 3, np.int32)})


def finalize_units(run_dir: RunDir, units: list):
    return finalize(run_dir, MergeSpec({"model": "fake"}, None, False, units=units))
