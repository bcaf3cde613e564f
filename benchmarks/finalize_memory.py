"""Peak memory and time of finalize: N synthetic rows x D dims in shards -> embeddings.h5.

    .venv/bin/python benchmarks/finalize_memory.py --rows 1000000 --dim 768
    .venv/bin/python benchmarks/finalize_memory.py --rows 10000000 --dim 384 --workdir /big/disk

Shards are written by ray_job's own writer (as the pipeline writes them, 512 rows each, in
shuffled key order), one at a time (nothing but the shard being written is in memory, so 10M
rows need no more memory than 3,000). Then the finalizer runs in a fresh child process whose
peak RSS is read from the kernel (ru_maxrss of the child). `--code DIR` runs the finalizer of
another checkout (e.g. an older one) on the same shards, for a comparison. Everything written
is deleted at the end (`--keep` keeps it)."""
from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray_job.encode.encoder import embedding_array  # noqa: E402
from ray_job.rundir.rundir import RunDir  # noqa: E402

FINALIZE = """
import sys, time
from ray_job.finalize.merge import MergeSpec, Storage, finalize
from ray_job.rundir.rundir import RunDir
run_dir = RunDir.at(sys.argv[1])
spec = MergeSpec({"model": "synthetic"}, "https://arxiv.org/pdf/{id}.pdf",
                 storage=Storage(sys.argv[2]))
t = time.perf_counter()
if sys.argv[3] == "quality":      # the quality pass as finalize_run runs it (no labels: no inputs)
    from ray_job.quality.neighbours import nearest
    from ray_job.quality.tap import QualityTap
    with run_dir.scratch() as scratch:
        tap = QualityTap(scratch, 256)
        r = finalize(run_dir, spec, tap)
        measured = tap.finish()
    nearest(measured.sample.vectors)
else:
    r = finalize(run_dir, spec)
import resource
print(r.count, r.dim, round(time.perf_counter() - t, 2),
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_shards(out: Path, rows: int, dim: int, per_shard: int = 512) -> None:
    """Shards of `per_shard` rows in shuffled key order, written one at a time; every 1000th
    row repeats an earlier id (so the duplicate pass has work)."""
    run_dir = RunDir.at(out)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((per_shard, dim), dtype=np.float32)
    for start in rng.permutation(np.arange(0, rows, per_shard)):
        keys = np.arange(start, min(start + per_shard, rows), dtype=np.int64)
        id_of = np.where(keys % 1000 == 999, keys - 500, keys)
        emb = np.roll(base[:len(keys)], int(start // per_shard) % dim, axis=1)
        run_dir.shards.write(pa.table({
            "key": keys, "id": [f"{k // 100000:04d}.{k % 100000:05d}" for k in id_of],
            "text_hash": pa.array(keys.astype(np.uint64)), "embedding": embedding_array(emb),
            "n_tokens": np.full(len(keys), 200, np.int32),
            "n_computed": np.full(len(keys), 204, np.int32)}))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--storage-dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--workdir", type=Path, default=None, help="where shards and h5 go")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose finalizer runs")
    parser.add_argument("--keep", action="store_true", help="keep the run directory")
    parser.add_argument("--repeat", type=int, default=1,
                        help="finalize this many times per mode and keep the fastest (a "
                             "shared machine's noise)")
    parser.add_argument("--quality", action="store_true",
                        help="finalize once without and once with the quality pass, on the "
                             "same shards (a checkout from before the pass: without only)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="finalize-bench-", dir=args.workdir))
    try:
        t = time.perf_counter()
        write_shards(tmp, args.rows, args.dim)
        write_s = time.perf_counter() - t
        modes = ("plain", "quality") if args.quality else ("plain",)
        runs = [min((run_finalizer(tmp, args.storage_dtype, mode, args.code)
                     for _ in range(args.repeat)), key=lambda r: r[2]) for mode in modes]
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    for mode, (count, dim, seconds, peak_mib) in zip(modes, runs, strict=True):
        report(args, mode, count, dim, seconds, peak_mib, write_s)
    if args.quality:
        plain, quality = runs[0][2], runs[1][2]
        print(f"quality pass: +{quality - plain:.2f} s on {plain:.2f} s "
              f"({(quality - plain) / plain:+.1%} of finalize)")


def run_finalizer(tmp: Path, storage: str, mode: str, code: Path) -> tuple[int, int, float, float]:
    """(rows, dim, seconds, peak RSS MiB) of one finalize in a fresh child process (its
    own ru_maxrss, read by itself)."""
    out = subprocess.run([sys.executable, "-c", FINALIZE, str(tmp), storage, mode],
                         capture_output=True, text=True, check=True, cwd=code).stdout.split()
    count, dim, seconds, peak_kib = out[-4:]
    return int(count), int(dim), float(seconds), int(peak_kib) / 1024


def report(args, mode: str, count: int, dim: int, seconds: float, peak_mib: float,
           write_s: float) -> None:
    data_mib = args.rows * args.dim * 4 / 2**20
    print(f"finalize ({mode}) {args.rows:,} x {dim}: {seconds} s, peak RSS {peak_mib:,.0f} MiB "
          f"(the embeddings alone are {data_mib:,.0f} MiB; {count:,} rows kept)")
    print(f"mode={mode} rows={args.rows} dim={dim} storage={args.storage_dtype} seconds={seconds} "
          f"peak_rss_mib={peak_mib:.0f} us_per_row={seconds / args.rows * 1e6:.2f} "
          f"rss_bytes_per_row={peak_mib * 2**20 / args.rows:.1f} shards_written_s={write_s:.1f} "
          f"code={args.code} cpu={cpu_model()!r}")


if __name__ == "__main__":
    main()
