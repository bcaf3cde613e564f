"""Peak memory of one read task on a compressed JSON Lines file (one read unit: the whole file).

    .venv/bin/python benchmarks/gzip_memory.py --mb 1024 [--code /path/to/another/checkout]

Writes a JSONL of about `--mb` MB (decompressed) from the real arXiv sample, every copy with a
new id, gzips it (level 6, like the arXiv snapshot's .json.gz), then reads it as a pipeline read
task does, in a fresh child process per `--code` tree (default: this checkout), and prints the
rows, the seconds and the child's peak RSS (its own ru_maxrss). A tree with `stream_unit_rows` (this
one) is read chunk by chunk, each table dropped as Ray Data would take it; an older tree's
`rows_from_unit` builds the unit's whole table, as its `units_to_rows` did.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "arxiv-metadata-sample-1000.jsonl"

READ = """
import resource, sys, time
from ray_job.read.inputs import plan_units, resolve_inputs
from ray_job.read.text import TextTemplate
import ray_job.read.sources as sources
t = time.perf_counter()
units = plan_units(resolve_inputs([sys.argv[1]]), 64 * 2**20, None)
template = TextTemplate("{title}{sep}{abstract}", " [SEP] ")
rows = 0
for unit in units:
    if hasattr(sources, "stream_unit_rows"):
        out = sources.UnitRows(sources.ROW_SCHEMA.empty_table(), [])
        for table in sources.stream_unit_rows(out, unit, template, "id"):
            rows += table.num_rows
    else:
        rows += sources.rows_from_unit(unit, template, "id").table.num_rows
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(len(units), rows, round(time.perf_counter() - t, 1), peak_kib)
"""


def write_input(path: Path, mb: int, sample: Path = SAMPLE) -> tuple[int, int]:
    """A .jsonl.gz of about `mb` MB decompressed; (decompressed, compressed) bytes."""
    records = [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]
    target, written, copy = mb * 2**20, 0, 0
    with gzip.open(path, "wb", compresslevel=6) as fh:
        while written < target:
            block = "".join(json.dumps({**r, "id": f"{copy:06d}.{i:05d}"}) + "\n"
                            for i, r in enumerate(records)).encode()
            fh.write(block)
            written += len(block)
            copy += 1
    return written, path.stat().st_size


def measure(code: Path, path: Path) -> tuple[int, int, float, float]:
    """(units, rows, seconds, peak RSS MiB) of reading `path` with the tree at `code`: the
    child's own ru_maxrss (the parent's RUSAGE_CHILDREN would be the max over all children)."""
    out = subprocess.run([sys.executable, "-c", READ, str(path)], capture_output=True,
                         text=True, check=True, cwd=code,
                         env={**os.environ, "PYTHONPATH": str(code)}).stdout.split()
    return int(out[0]), int(out[1]), float(out[2]), int(out[3]) / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024, help="decompressed MB of JSONL")
    parser.add_argument("--code", type=Path, action="append",
                        help="checkout(s) to measure (default: this one); each in its own child")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the input")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "papers.jsonl.gz"
        raw, packed = write_input(path, args.mb)
        print(f"input: {raw / 2**20:,.0f} MiB JSONL, {packed / 2**20:,.0f} MiB gzip")
        for code in args.code or [ROOT]:
            units, rows, seconds, peak = measure(code.resolve(), path)
            print(f"{code}: {units} unit(s), {rows:,} rows, {seconds} s, peak RSS {peak:,.0f} MiB")


if __name__ == "__main__":
    main()
