"""The shard sink, the pipeline's last Ray stage: each encoded block becomes one complete shard
file in the run directory (`RunDir.write_shard`), and the stage names it to the driver."""
from __future__ import annotations

import pyarrow as pa

from ..faults import NO_STORAGE_FAULTS, StorageFaults
from ..storage.injection import in_task
from .fence import Fence
from .rundir import RunDir

SHARD_WRITTEN = pa.schema([("shard", pa.string()), ("rows", pa.int64())])


def write_shard_block(block: pa.Table, run_url: str, fence: Fence | None = None,
                      config_hash: str | None = None,
                      faults: StorageFaults = NO_STORAGE_FAULTS) -> pa.Table:
    """Ray map_batches function (one block per call): the block becomes one complete shard
    file in the run directory at `run_url` (a local directory or an object-store prefix that
    every node can reach), written only while the driver holds the lease `fence` names and
    stamped with the run's `config_hash`. Returns one row naming the shard and its rows (none
    for an empty block): the driver reads these as they come, so it hears of every shard
    without a listing and without an actor of its own. `faults`: the driver's storage fault
    plan (tests only)."""
    table = _as_table(block)
    with in_task(faults):
        name = RunDir(run_url, fence).write_shard(table, config_hash)
    return pa.table({"shard": [name] if name else [], "rows": [table.num_rows] if name else []},
                    schema=SHARD_WRITTEN)


def _as_table(block) -> pa.Table:
    if isinstance(block, pa.Table):
        return block
    from ray.data.block import BlockAccessor

    return BlockAccessor.for_block(block).to_arrow()
