"""`ray-embed dedup` at full size: time, peak RSS and recall of planted near duplicates on a
synthetic run of N unit vectors (2.7M x 384: the arXiv snapshot with a small model).

    .venv/bin/python benchmarks/dedup.py --rows 2700000 --workdir /big/disk

The vectors are benchmarks/search.py's Clusters (topics and subtopics, as text embeddings
have); one row in PLANT_EVERY is made a copy (cosine 1), or a near copy at cosine 0.99 or
0.97, of an earlier row of its chunk. The run has no inputs to read titles from (pairs
without titles, a one-line note). The dedup runs in a child process of its own, which
reports its wall time and peak RSS (ru_maxrss: the dedup alone); recall = planted pairs
found with the right kept paper / planted pairs. Everything is deleted at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from datapath import cpu_model  # noqa: E402
from search import CHUNK, Clusters  # noqa: E402

PLANT_EVERY = 100
COSINES = (1.0, 0.99, 0.97)
THRESHOLD = 0.95


def near_copies(originals: np.ndarray, rng) -> np.ndarray:
    """Unit vectors at COSINES (in turn) from each of `originals`."""
    cos = np.array([COSINES[i % len(COSINES)] for i in range(len(originals))])[:, None]
    other = rng.standard_normal(originals.shape)
    other -= np.sum(other * originals, axis=1, keepdims=True) * originals
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    return (cos * originals + np.sqrt(1 - cos**2) * other).astype(np.float32)


def write_run(run: Path, rows: int, dim: int) -> Path:
    """embeddings.h5 with planted pairs, job.json, report.json; planted.npy (copy, original)."""
    from ray_job.config import JobConfig
    from ray_job.rundir.job import JobRecord, ModelInfo

    run.mkdir(parents=True)
    clusters, rng, planted = Clusters(dim), np.random.default_rng(7), []
    with h5py.File(run / "embeddings.h5", "w") as h5:
        h5.create_dataset("ids", data=np.array([b"syn.%09d" % i for i in range(rows)]))
        dset = h5.create_dataset("embeddings", (rows, dim), dtype="float32",
                                 chunks=(min(rows, max(1, (1 << 20) // (4 * dim))), dim))
        for start in range(0, rows, CHUNK):
            chunk = clusters.draw(min(CHUNK, rows - start), seed=1 + start // CHUNK)
            copies = np.arange(PLANT_EVERY, len(chunk), PLANT_EVERY)
            originals = (rng.random(len(copies)) * copies).astype(np.int64)
            chunk[copies] = near_copies(chunk[originals].astype(np.float64), rng)
            planted.append(np.stack([copies + start, originals + start], axis=1))
            dset[start:start + len(chunk)] = chunk
        h5.attrs.update({"count": rows, "dim": dim, "normalized": True})
    np.save(run / "planted.npy", np.concatenate(planted))
    cfg = JobConfig.of(inputs=(str(run / "no-inputs.jsonl"),), output=str(run), text="{a}")
    model = ModelInfo("synthetic", "synthetic", "synthetic", "synthetic", 512, "", 0, dim,
                      "mean", True)
    (run / "job.json").write_text(
        JobRecord.new(cfg, model, {"weights": "synthetic"}, "cpu", "fp32").to_json())
    (run / "report.json").write_text(json.dumps({"rows_embedded": rows}))
    return run


def child(run: Path) -> dict:
    """The dedup in this process: its wall time, CPU time, peak RSS and recall."""
    import pyarrow.parquet as pq

    from ray_job.dedup.build import build_dedup

    started, cpu = time.perf_counter(), time.process_time()
    info = build_dedup(run, THRESHOLD, force=True)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    table = pq.read_table(run / "dedup" / "pairs.parquet", columns=["row", "duplicate_of_row"])
    found = dict(zip(table.column("row").to_numpy(), table.column("duplicate_of_row").to_numpy(),
                     strict=True))
    planted = np.load(run / "planted.npy")
    hits = sum(found.get(int(c)) == int(o) for c, o in planted)
    return {"rows": info["rows"], "planted": len(planted), "recall": round(hits / len(planted), 4),
            "pairs": info["pairs"], "components": info["components"],
            "candidates": info["method"]["candidates"], "clusters": info["method"]["count"],
            "largest_cluster": info["method"]["largest"], "seconds": round(wall, 1),
            "cpu_s": round(cpu, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def measure(rows: int, dim: int, workdir: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="dedup-bench-", dir=workdir) as tmp:
        started = time.perf_counter()
        run = write_run(Path(tmp) / "run", rows, dim)
        write_s = time.perf_counter() - started
        out = subprocess.run([sys.executable, __file__, "--child", str(run)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(HERE.parent)})
        result = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "dim": dim, "threshold": THRESHOLD, "write_s": round(write_s, 1),
            "cpu": cpu_model(), "load_avg": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_700_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    print(json.dumps(measure(args.rows, args.dim, args.workdir), indent=2))


if __name__ == "__main__":
    main()
