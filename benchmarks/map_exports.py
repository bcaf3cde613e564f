"""The map and the exports at full size: time, peak memory and size of `ray-embed map` and of
the int8 / binary / lance / parquet exports on a run of N rows (2.7M: the arXiv snapshot).

    .venv/bin/python benchmarks/map_exports.py --rows 2700000 --workdir /big/disk

The run is made cheaply, without a model: an arXiv-shaped JSON Lines corpus (the real sample
repeated with new ids: its titles and categories are what the map's labels and the Lance
table read again), an embeddings.h5 of clustered unit vectors with the corpus's ids in order
(benchmarks/search.py's Clusters: topics and subtopics, as text embeddings have) and a
job.json naming the corpus, as a finished run has. Each step then runs in a child process of
its own, which reports its wall time and its peak RSS (ru_maxrss: the step alone): the map
first (so the Parquet export carries its columns), then each export. Everything is deleted
at the end (`--keep` keeps it).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))
from datapath import cpu_model, write_corpus  # noqa: E402
from search import Clusters  # noqa: E402

CHUNK = 65536
STEPS = ("map", "int8", "binary", "lance", "parquet")
FILES = {"map": ["map"], "int8": ["embeddings-int8.h5"], "binary": ["embeddings-binary.h5"],
         "lance": ["lance"], "parquet": ["parquet"]}


def write_run(run: Path, rows: int, dim: int) -> None:
    """corpus.jsonl, embeddings.h5 (ids of the corpus in order, clustered vectors, urls) and
    job.json: what the map and the exports read of a finished run."""
    from ray_job.config import JobConfig
    from ray_job.rundir.job import JobRecord, ModelInfo

    run.mkdir(parents=True)
    corpus = write_corpus(rows, run / "corpus.jsonl")
    clusters = Clusters(dim)
    with open(corpus) as fh, h5py.File(run / "embeddings.h5", "w") as h5:
        ids = h5.create_dataset("ids", (rows,), dtype="S24")
        urls = h5.create_dataset("urls", (rows,), dtype="S56")
        vectors = h5.create_dataset("embeddings", (rows, dim), dtype="float32",
                                    chunks=(min(rows, max(1, (1 << 20) // (4 * dim))), dim))
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            chunk_ids = [json.loads(next(fh))["id"].encode() for _ in range(n)]
            ids[start:start + n] = chunk_ids
            urls[start:start + n] = [b"https://arxiv.org/pdf/%s.pdf" % i for i in chunk_ids]
            vectors[start:start + n] = clusters.draw(n, seed=1 + start // CHUNK)
        h5.attrs.update({"model": "synthetic", "normalized": True, "count": rows, "dim": dim})
    cfg = JobConfig.of(inputs=(str(corpus),), output=str(run), text="{abstract}")
    model = ModelInfo("synthetic", "synthetic", "synthetic", "synthetic", 512, "", 0, dim,
                      "mean", True)
    record = JobRecord.new(cfg, model, {"weights": "synthetic"}, "cpu", "fp32")
    (run / "job.json").write_text(record.to_json())


def step(name: str, run: Path, sample: int, truncate_dim: int | None) -> dict:
    """One step in this process: its wall time, peak RSS and the bytes it wrote."""
    from ray_job.finalize.exports import run_exports
    from ray_job.map.build import build_map
    from ray_job.rundir.rundir import RunDir

    started, cpu = time.perf_counter(), time.process_time()
    if name == "map":
        info = build_map(run, force=True, sample=sample)
        extra = {"labels": info["labels"]["source"], "sample": info["sample"]}
    else:
        run_exports(RunDir.at(run), (name,), truncate_dim if name in ("int8", "binary") else None)
        extra = {}
    seconds = time.perf_counter() - started
    return {"step": name, "seconds": round(seconds, 1),
            "cpu_s": round(time.process_time() - cpu, 1), "bytes": written(run, name),
            "peak_rss_mib": peak_rss_mib(), **extra}


def peak_rss_mib() -> int:
    """This process's peak RSS: VmHWM (its own address space, so not the parent's it was
    forked from, which ru_maxrss keeps across exec), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def written(run: Path, name: str) -> int:
    total = 0
    for item in FILES[name]:
        path = run / item
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        total += sum(p.stat().st_size for p in files)
    return total


def measure(rows: int, dim: int, sample: int, workdir: Path, truncate_dim: int | None,
            children: bool = True, keep: bool = False, steps: tuple = STEPS) -> dict:
    run = workdir / f"run-{rows}"
    t = time.perf_counter()
    write_run(run, rows, dim)
    result = {"rows": rows, "dim": dim, "sample": sample, "truncate_dim": truncate_dim,
              "cpu": cpu_model(), "cores": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
              "make_run_s": round(time.perf_counter() - t, 1),
              "h5_bytes": (run / "embeddings.h5").stat().st_size, "steps": []}
    try:
        for name in steps:
            if not children:
                result["steps"].append(step(name, run, sample, truncate_dim))
                continue
            out = subprocess.run([sys.executable, __file__, "--child", name, str(run),
                                  str(sample), str(truncate_dim or 0)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"step {name} failed:\n{out.stderr[-3000:]}")
            result["steps"].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(result["steps"][-1]), file=sys.stderr, flush=True)
    finally:
        if not keep:
            shutil.rmtree(run, ignore_errors=True)
    return result


def format_table(result: dict) -> str:
    cut = f", int8/binary of the first {result['truncate_dim']} dims" if result[
        "truncate_dim"] else ""
    lines = [f"{result['cpu']}, {result['cores']} cores, load {result['load_avg_1m']:.1f}; "
             f"{result['rows']:,} rows x {result['dim']}, map sample {result['sample']:,}{cut}; "
             f"embeddings.h5 {result['h5_bytes'] / 2**20:,.0f} MiB", "",
             "| step | wall s | CPU s | peak RSS MiB | written MiB | bytes / row |",
             "|---|---:|---:|---:|---:|---:|"]
    for s in result["steps"]:
        lines.append(f"| {s['step']} | {s['seconds']} | {s.get('cpu_s', '')} | "
                     f"{s['peak_rss_mib']:,} | {s['bytes'] / 2**20:,.1f} | "
                     f"{s['bytes'] / result['rows']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_700_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--sample", type=int, default=None, help="map sample (default: the "
                                                                 "map's own, 50,000)")
    parser.add_argument("--truncate-dim", type=int, default=None)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS),
                        help="which steps (default all; the Parquet export has the map's "
                             "columns only after the map step)")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--in-process", action="store_true",
                        help="every step in this process (a quick check; RSS is not per step)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, run, sample, cut = args.child
        print(json.dumps(step(name, Path(run), int(sample), int(cut) or None)))
        return {}
    from ray_job.map.build import MAP_SAMPLE

    with tempfile.TemporaryDirectory(prefix="map-exports-", dir=args.workdir) as tmp:
        result = measure(args.rows, args.dim, args.sample or MAP_SAMPLE, Path(tmp),
                         args.truncate_dim, not args.in_process, args.keep,
                         tuple(args.steps))
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return result


if __name__ == "__main__":
    main()
