"""Search at full size: build time, index size, recall@10 and query latency of ray_job's index
against the exact scan, on clustered synthetic vectors written to an embeddings.h5; then the
same for the compact indexes (int8 and binary codes, all dims and the first half, candidates
rescored exactly: `ray-embed index --vectors ... [--truncate-dim D]`), with their size.

    .venv/bin/python benchmarks/search.py --rows 2700000 --dims 384 768

The vectors are clustered like text embeddings (topics, subtopics within them, and noise:
a paper's nearest neighbour has cosine ~0.6, a random pair ~0), so recall is meaningful.
Queries are new points drawn the same way (a query text near some topic). Ground truth is
ray_job's exact scan (search.top_k). Latency is one query at a time through the code path
`ray-embed search` uses once the query is embedded (index candidates, then exact scores
from embeddings.h5), p50 / p95 over the queries."""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ray_job.search import ann, compact  # noqa: E402
from ray_job.search.index import LoadedIndex  # noqa: E402
from ray_job.search.search import nearest, top_k  # noqa: E402

TOPICS, SUBTOPICS = 1000, 20          # 20,000 subtopics
CHUNK = 65536


class Clusters:
    """Topic and subtopic centres; a vector = topic + 0.8 subtopic + noise, normalised."""

    def __init__(self, dim: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.topics = ann.unit(rng.standard_normal((TOPICS, dim), dtype=np.float32))
        self.subs = ann.unit(rng.standard_normal((TOPICS * SUBTOPICS, dim), dtype=np.float32))

    def draw(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        sub = rng.integers(0, len(self.subs), n)
        noise = rng.standard_normal((n, self.dim), dtype=np.float32) / np.sqrt(self.dim)
        return ann.unit(self.topics[sub // SUBTOPICS] + 0.8 * self.subs[sub] + noise)


def write_h5(path: Path, clusters: Clusters, rows: int) -> None:
    with h5py.File(path, "w") as h5:
        h5.create_dataset("ids", data=np.array([f"syn.{i:08d}".encode() for i in range(rows)]))
        dset = h5.create_dataset("embeddings", (rows, clusters.dim), dtype="float32",
                                 chunks=(min(rows, max(1, (1 << 20) // (4 * clusters.dim))),
                                         clusters.dim))
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            dset[start:start + n] = clusters.draw(n, seed=1 + start // CHUNK)
        h5.attrs["count"], h5.attrs["dim"] = rows, clusters.dim


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t)
                          for f, t in zip(found, truth, strict=True)]))


def measure(rows: int, dim: int, n_queries: int, k: int, nprobes: list[int], tmp: Path,
            with_compact: bool = True) -> dict:
    clusters = Clusters(dim)
    h5 = tmp / f"embeddings-{dim}.h5"
    t = time.perf_counter()
    write_h5(h5, clusters, rows)
    write_s = time.perf_counter() - t
    queries = clusters.draw(n_queries, seed=10**6)
    t = time.perf_counter()
    truth, _ = top_k(h5, queries, k)
    truth_s = time.perf_counter() - t
    t = time.perf_counter()
    one_exact = top_k(h5, queries[:1], k)
    exact_ms = (time.perf_counter() - t) * 1000
    assert (one_exact[0][0] == truth[0]).all()

    spec = ann.choose_spec(rows)
    t, cpu = time.perf_counter(), time.process_time()
    index_path = tmp / f"ann-{dim}.faiss"
    ann.save(ann.build(h5, spec), index_path)
    build_s, build_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    build_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"rows": rows, "dim": dim, "factory": spec.factory, "h5_bytes": h5.stat().st_size,
              "write_h5_s": round(write_s, 1), "ground_truth_s": round(truth_s, 1),
              "exact_scan_one_query_ms": round(exact_ms, 1), "build_s": round(build_s, 1),
              "build_cpu_s": round(build_cpu_s, 1), "load_avg_1m": os.getloadavg()[0],
              "peak_rss_mib_after_build": round(build_rss_mib),
              "index_bytes": index_path.stat().st_size, "by_nprobe": []}
    for nprobe in (nprobes if spec.nlist else [0]):
        loaded = LoadedIndex(ann.load(index_path, ann.AnnSpec(spec.factory, spec.nlist, nprobe)))
        result["by_nprobe"].append({"nprobe": nprobe,
                                    **searched(h5, loaded, queries, truth, k)})
        print(json.dumps({"dim": dim, **result["by_nprobe"][-1]}), flush=True)
    if with_compact:
        result["compact"] = [measure_compact(h5, queries, truth, k, vectors, cut, tmp)
                             for vectors, cut in compact_kinds(dim)]
    h5.unlink()
    index_path.unlink()
    return result


def searched(h5: Path, loaded: LoadedIndex, queries: np.ndarray, truth: np.ndarray,
             k: int) -> dict:
    """Recall@k of the index's candidates alone and as `search` returns them (rescored), and
    the latency of one query at a time through search's code path."""
    raw = loaded.candidates(queries, k)
    latencies, found = [], []
    for q in queries:
        t = time.perf_counter()
        got, _ = nearest(h5, loaded, q, k)
        latencies.append((time.perf_counter() - t) * 1000)
        found.append(got)
    return {"recall_at_k_index_only": round(recall(raw, truth), 4),
            "recall_at_k": round(recall(found, truth), 4),
            "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2)}


def compact_kinds(dim: int) -> list[tuple[str, int | None]]:
    return [("int8", None), ("binary", None), ("int8", dim // 2), ("binary", dim // 2)]


def measure_compact(h5: Path, queries: np.ndarray, truth: np.ndarray, k: int, vectors: str,
                    truncate_dim: int | None, tmp: Path) -> dict:
    """Size, build time, recall@k (index alone, and rescored as search does) and latency."""
    t = time.perf_counter()
    index, facts = compact.build(h5, vectors, truncate_dim)
    build_s = time.perf_counter() - t
    path = tmp / f"compact-{vectors}-{truncate_dim}.faiss"
    compact.save(index, vectors, path)
    info = {"vectors": vectors, "truncate_dim": truncate_dim or 0,
            "rescore": compact.RESCORE[vectors]}
    loaded = LoadedIndex(compact.load(path, vectors), info=info)
    row = {**info, "build_s": round(build_s, 1), "index_bytes": path.stat().st_size,
           "code_bytes_per_row": int(index.code_size),
           **searched(h5, loaded, queries, truth, k)}
    path.unlink()
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_700_000)
    parser.add_argument("--dims", type=int, nargs="+", default=[384, 768])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--workdir", help="where the h5 and index go (default: a temp dir)")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--no-compact", action="store_true", help="float32 index only")
    args = parser.parse_args(argv)
    results = {"cpus": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for dim in args.dims:
            run = measure(args.rows, dim, args.queries, args.k, args.nprobe, Path(tmp),
                          not args.no_compact)
            results["runs"].append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "by_nprobe"}), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
