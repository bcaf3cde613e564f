"""Does the pipeline hold its rate and keep the driver's memory flat as the corpus grows?

    .venv/bin/python benchmarks/scale.py [--sizes 10000 100000 400000] [--json]

For each size: an arXiv-shaped corpus of N rows (the real sample repeated with new ids, text
`{abstract}`), run end to end (`ray_job.pipeline.run`) with a tiny 2-layer BERT in a child
process of its own, which reports the steady-state and whole-run docs/s, the driver's RSS
through the encode phase (first and last of its samples, report.json's
`pipeline.driver_rss_mib`) and the driver's peak RSS (the child's own ru_maxrss: the driver,
finalize included, not Ray's processes). 2.7M rows is the arXiv
snapshot's size.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from datapath import ROOT, TEMPLATE, cpu_model, write_corpus  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))


def child(corpus: Path, model: Path, out: Path, max_seq_length: int | None = None) -> dict:
    """One run, in this process (the driver); its numbers as a dict."""
    sys.path.insert(0, str(ROOT))
    from ray_job.config import JobConfig
    from ray_job.pipeline import run

    started = time.perf_counter()
    report = run(JobConfig.of(inputs=(str(corpus),), output=str(out), model=str(model),
                              text=TEMPLATE, precision="fp32", fresh=True,
                              max_seq_length=max_seq_length))
    pipe = report.get("pipeline") or {}
    return {"rows_embedded": report["rows_embedded"], "rows_rejected": report["rows_rejected"],
            "command_s": round(time.perf_counter() - started, 3),
            "encode_wall_s": report["encode_wall_s"], "whole_docs_per_s": report["docs_per_s"],
            "steady_docs_per_s": pipe.get("steady_docs_per_s"), "startup_s": pipe.get("startup_s"),
            "encode_rss_mib": pipe.get("driver_rss_mib") or {},
            "driver_peak_rss_mib": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def one_size(rows: int, model: Path, scratch: Path, max_seq_length: int | None = None) -> dict:
    corpus = write_corpus(rows, scratch / f"arxiv-{rows}.jsonl")
    try:
        out = subprocess.run([sys.executable, __file__, "--child", str(corpus), str(model),
                              str(scratch / f"out-{rows}"), str(max_seq_length or 0)],
                             capture_output=True, text=True)
    finally:
        corpus.unlink()
        shutil.rmtree(scratch / f"out-{rows}", ignore_errors=True)
    if out.returncode != 0:
        raise RuntimeError(f"the run of {rows:,} rows failed:\n{out.stderr[-3000:]}")
    return {"rows": rows, **json.loads(out.stdout.strip().splitlines()[-1])}


def encode_rss(size: dict) -> str:
    rss = size.get("encode_rss_mib") or {}
    return f"{rss['first']} -> {rss['last']}" if rss else "n/a"


def format_table(result: dict) -> str:
    cut = (f", truncated to {result['max_seq_length']} tokens"
           if result.get("max_seq_length") else "")
    lines = [f"{result['cpu']}, {result['cores']} cores; tiny 2-layer BERT, "
             f"text {TEMPLATE}{cut}", "",
             "| rows | embedded | steady docs/s | whole-run docs/s | start-up s | command s | "
             "driver RSS MiB, encode phase first -> last | driver peak RSS MiB |",
             "|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in result["sizes"]:
        lines.append(f"| {r['rows']:,} | {r['rows_embedded']:,} | {r['steady_docs_per_s']} | "
                     f"{r['whole_docs_per_s']} | {r['startup_s']} | {r['command_s']} | "
                     f"{encode_rss(r)} | {r['driver_peak_rss_mib']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 400_000])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--max-seq-length", type=int, default=None,
                        help="truncate texts to this many tokens: the model's cost falls, the "
                             "data path's stays (every text is still read, rendered and "
                             "tokenized); for sizes the model's cost would not fit in a day")
    parser.add_argument("--child", nargs=4, metavar=("CORPUS", "MODEL", "OUT", "MAX_LEN"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        corpus, model, out, max_len = args.child
        print(json.dumps(child(Path(corpus), Path(model), Path(out), int(max_len) or None)))
        return 0
    from tiny_models import tiny_bert

    with tempfile.TemporaryDirectory(prefix="scale-") as scratch:
        model = tiny_bert(Path(scratch) / "tiny-bert")
        result = {"cpu": cpu_model(), "cores": os.cpu_count(),
                  "max_seq_length": args.max_seq_length,
                  "sizes": [one_size(n, model, Path(scratch), args.max_seq_length)
                            for n in args.sizes]}
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
