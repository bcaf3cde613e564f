"""Progress and --upload-every learn of shards from the sink's tally, never by listing."""
from __future__ import annotations

import io

from ray_job.rundir.progress import Progress
from ray_job.rundir.tally import ShardTally


def test_the_tally_counts_each_shard_once_in_write_order():
    tally = ShardTally()
    tally.add("part-b", 10)
    tally.add("part-a", 5)
    tally.add("part-b", 10)                    # a retried block rewrote the same shard
    assert tally.rows() == 15
    assert tally.names_since(0) == ["part-b", "part-a"] and tally.names_since(1) == ["part-a"]


def test_progress_reads_the_tally_and_lists_nothing():
    tally, out = ShardTally(), io.StringIO()
    with Progress(tally, total=100, start_rows=20, stream=out, interval=0.01):
        tally.add("part-a", 40)
    last = out.getvalue().splitlines()[-1]
    assert last.startswith("embedded 40/~80 rows (50%)")
