"""Peak memory of finalize: N synthetic rows x D dims in shards -> embeddings.h5.

    .venv/bin/python benchmarks/finalize_memory.py --rows 100000 --dim 384

Shards are written by ray_job's own writer (as the pipeline writes them, 512 rows each, in
shuffled key order), then the finalizer runs in a fresh child process whose peak RSS is read
from the kernel (ru_maxrss of the child)."""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray_job.encode.encoder import embedding_array  # noqa: E402
from ray_job.rundir.rundir import RunDir  # noqa: E402

FINALIZE = """
import sys, time
from ray_job.finalize.merge import MergeSpec, finalize
from ray_job.rundir.rundir import RunDir
t = time.perf_counter()
r = finalize(RunDir.at(sys.argv[1]),
             MergeSpec({"model": "synthetic"}, "https://arxiv.org/pdf/{id}.pdf"))
print(r.count, r.dim, round(time.perf_counter() - t, 2))
"""


def write_shards(out: Path, rows: int, dim: int, per_shard: int = 512) -> None:
    run_dir = RunDir.at(out)
    rng = np.random.default_rng(0)
    starts = rng.permutation(np.arange(0, rows, per_shard))
    for start in starts:
        keys = np.arange(start, min(start + per_shard, rows), dtype=np.int64)
        emb = rng.standard_normal((len(keys), dim), dtype=np.float32)
        run_dir.write_shard(pa.table({
            "key": keys, "id": [f"{k // 100000:04d}.{k % 100000:05d}" for k in keys],
            "text_hash": pa.array(keys.astype(np.uint64)), "embedding": embedding_array(emb),
            "n_tokens": np.full(len(keys), 200, np.int32),
            "n_computed": np.full(len(keys), 204, np.int32)}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        write_shards(Path(tmp), args.rows, args.dim)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out = subprocess.run([sys.executable, "-c", FINALIZE, tmp], capture_output=True,
                             text=True, check=True, cwd=ROOT).stdout.split()
        peak_mib = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        data_mib = args.rows * args.dim * 4 / 2**20
        print(f"finalize {int(out[0]):,} x {out[1]}: {out[2]} s, peak RSS {peak_mib:,.0f} MiB "
              f"(the embeddings alone are {data_mib:,.0f} MiB)")


if __name__ == "__main__":
    main()
