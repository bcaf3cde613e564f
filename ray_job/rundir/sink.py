"""The shard sink, the pipeline's last Ray stage and the only writer of shards and of the
rejects of rows rejected after the read stage: each encoded block's rejected rows become their
reject files, then its other rows one complete shard file in the run directory
(`RunDir.shards.write`), and the stage names the shard to the driver.

Exactly once: a block's rejects and its shard are written in the one step that commits the
block, rejects first, the shard last. Every file is named after the keys it holds, so a block
written again (a retried task, a block computed again after its replica died, a resumed run)
rewrites the same files with the same content; a block whose shard never landed is read and
computed again, its rejects with it."""
from __future__ import annotations

import collections

import pyarrow as pa
import pyarrow.compute as pc

from ..redact import redacting
from .rejects import split_rejected
from .stage import RunContext

# what the driver hears of each shard: its name, rows and first and last keys (which read
# units it holds: the progress line's estimate, read.estimate.RowEstimate)
SHARD_WRITTEN = pa.schema([("shard", pa.string()), ("rows", pa.int64()),
                           ("first_key", pa.int64()), ("last_key", pa.int64())])


def write_shard_block(block: pa.Table, context: RunContext) -> pa.Table:
    """The write stage (a Ray map_batches function, one block per call): the block's rejected
    rows become their reject files and the rest one complete shard file in the run directory
    (`context.run_url`: a local directory or an object-store prefix that every node can
    reach), written only while the driver holds the lease `context.fence` names, the shard
    stamped with the run's `context.config_hash`. Returns one row naming the shard, its rows
    and its first and last keys (none for a block without rows to embed): the driver reads
    these as they come, so it hears of every shard without a listing and without an actor of
    its own."""
    table, rejects = split_rejected(_as_table(block))
    run_dir = context.run_dir()
    with redacting():
        write_block_rejects(run_dir, rejects)
        name = run_dir.shards.write(table, context.config_hash)
    if not name:
        return SHARD_WRITTEN.empty_table()
    keys = pc.min_max(table.column("key"))
    return pa.table({"shard": [name], "rows": [table.num_rows], "first_key": [keys["min"]],
                     "last_key": [keys["max"]]}, schema=SHARD_WRITTEN)


def write_block_rejects(run_dir, rejects: list[tuple[str, dict]]) -> None:
    """Each (stage, record) of a block as its row's reject file (rundir/layout.row_rejects)."""
    by_stage = collections.defaultdict(list)
    for stage, record in rejects:
        by_stage[stage].append(record)
    for stage, records in by_stage.items():
        run_dir.rejects.write_rows(stage, records)


def _as_table(block) -> pa.Table:
    if isinstance(block, pa.Table):
        return block
    from ray.data.block import BlockAccessor

    return BlockAccessor.for_block(block).to_arrow()
