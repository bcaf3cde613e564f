"""Run by test_multinode.py in its own process: a head and 2 worker nodes that declare one
(fake) GPU each, on this machine; optionally remove a worker node mid-run."""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from conftest import shard_files
from ray.cluster_utils import Cluster

from ray_job.config import JobConfig
from ray_job.pipeline import run
from ray_job.rundir.shards import rows_in_name


def remove_a_worker_when_work_is_done(cluster, shards: Path, node, seen: dict) -> None:
    while len(shard_files(shards)) < 1:
        time.sleep(0.2)
    seen["rows_done_at_removal"] = sum(rows_in_name(p.name) for p in shard_files(shards))
    cluster.remove_node(node, allow_graceful=False)


def main(sample: str, out: str, limit: int, lose_node: bool) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    workers = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    seen: dict = {}
    if lose_node:
        threading.Thread(target=remove_a_worker_when_work_is_done,
                         args=(cluster, Path(out) / "shards", workers[1], seen),
                         daemon=True).start()
    try:
        report = run(JobConfig.of(inputs=(sample,), output=out, limit=limit, precision="fp32",
                               address=cluster.address, block_bytes=20_000, shard_rows=16))
    finally:
        cluster.shutdown()
    print("REPORT " + json.dumps({**report, **seen}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "lose")
