"""The shard sink, the pipeline's last Ray stage: each encoded block becomes one complete shard
file in the run directory (`RunDir.write_shard`), and the stage names it to the driver."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ..redact import redacting
from .stage import RunContext

# what the driver hears of each shard: its name, rows and first and last keys (which read
# units it holds: the progress line's estimate, read.estimate.RowEstimate)
SHARD_WRITTEN = pa.schema([("shard", pa.string()), ("rows", pa.int64()),
                           ("first_key", pa.int64()), ("last_key", pa.int64())])


def write_shard_block(block: pa.Table, context: RunContext) -> pa.Table:
    """The write stage (a Ray map_batches function, one block per call): the block becomes
    one complete shard file in the run directory (`context.run_url`: a local directory or an
    object-store prefix that every node can reach), written only while the driver holds the
    lease `context.fence` names and stamped with the run's `context.config_hash`. Returns one row naming the shard, its rows and its
    first and last keys (none for an empty block): the driver reads these as they come, so it hears of every shard
    without a listing and without an actor of its own."""
    table = _as_table(block)
    with redacting():
        name = context.run_dir().write_shard(table, context.config_hash)
    if not name:
        return SHARD_WRITTEN.empty_table()
    keys = pc.min_max(table.column("key"))
    return pa.table({"shard": [name], "rows": [table.num_rows], "first_key": [keys["min"]],
                     "last_key": [keys["max"]]}, schema=SHARD_WRITTEN)


def _as_table(block) -> pa.Table:
    if isinstance(block, pa.Table):
        return block
    from ray.data.block import BlockAccessor

    return BlockAccessor.for_block(block).to_arrow()
