"""Throughput of `ray-embed run` against what users run instead, on the same papers and machine.

    .venv/bin/python benchmarks/throughput.py [--scales 1 4] [--out benchmarks/results]

The real arXiv sample, repeated with new ids to each scale (4 = 4,000 papers), texts
`{abstract}`, the bundled all-MiniLM-L6-v2. In one invocation:

  notebook            the loop ray-embed replaces: file order, batches of 64, fp32 (in process)
  st <precision>      sentence-transformers' `encode` in this process at fp32, and at bf16
                      autocast and in bf16 weights where the CPU runs bf16 natively: the best
                      of them is the in-process bar
  peer                benchmarks/peer_ray_data.py as a command: read_json -> map_batches(a
                      sentence-transformers actor, torch threads = the CPUs) -> write_parquet
  peer, Ray's threads the same script, the actor's threads left as Ray sets them
  ray-embed           `ray-embed run --text '{abstract}'` with its defaults, as a command

Whole commands are timed on the largest scale; ray-embed's marginal docs/s is taken between
the smallest and largest scales (its start-up left out). Printed: each method's docs/s, and
ray-embed's ratio to the best peer (whole command: the goal is >= 1.3) and to the best
in-process precision (marginal: >= 1).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "arxiv-metadata-sample-1000.jsonl"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

FIELD = "abstract"


def load_records(path: Path = SAMPLE) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def texts_of(records: list[dict]) -> list[str]:
    return [" ".join(r[FIELD].split()) for r in records]


def scaled_corpus(records: list[dict], scale: int, path: Path) -> Path:
    with open(path, "w") as fh:
        for copy in range(scale):
            for r in records:
                fh.write(json.dumps({**r, "id": f"{r['id']}-{copy}"}) + "\n")
    return path


def machine() -> str:
    import torch

    from ray_job.encode.calibrate import machine_kind

    kind = machine_kind("cpu")
    return (f"{kind['cpu']}, {kind['cpus']} CPUs ({', '.join(kind['flags'])}), "
            f"{platform.machine()}, torch {torch.__version__}")


def in_process(texts: list[str]) -> dict[str, float]:
    """docs/s of the notebook loop and of sentence-transformers' encode at each precision the
    CPU runs natively, in this process (torch threads: the CPUs)."""
    import torch
    from sentence_transformers import SentenceTransformer

    from ray_job.encode.model.loading import bundled_model_path
    from ray_job.encode.model.precision import cpu_has_native_bf16

    torch.set_num_threads(os.cpu_count() or 1)
    model = SentenceTransformer(bundled_model_path(), device="cpu")
    rates = {"notebook": rate(lambda batch: notebook_loop(model, batch), texts),
             "st fp32": rate(lambda batch: model.encode(batch, batch_size=64), texts)}
    if cpu_has_native_bf16():
        def autocast(batch):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model.encode(batch, batch_size=64)
        rates["st bf16"] = rate(autocast, texts)
        halved = SentenceTransformer(bundled_model_path(), device="cpu").to(torch.bfloat16)
        rates["st bf16-weights"] = rate(lambda batch: halved.encode(batch, batch_size=64), texts)
    return rates


def rate(encode, texts: list[str]) -> float:
    """docs/s of `encode(texts)`, after a warm-up call on a few of them."""
    encode(texts[:16])
    started = time.perf_counter()
    encode(texts)
    return len(texts) / (time.perf_counter() - started)


def notebook_loop(model, texts: list[str]):
    import torch

    tok, out = model.tokenizer, []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            f = tok(texts[i:i + 64], padding=True, truncation=True,
                    max_length=model.max_seq_length, return_tensors="pt",
                    return_token_type_ids=False)
            out.append(model({"input_ids": f["input_ids"],
                              "attention_mask": f["attention_mask"]})["sentence_embedding"])
    return torch.cat(out)


def command(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args[:4])}... failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def peer(corpus: Path, out: Path, threads: int | None) -> float:
    extra = ["--threads", str(threads)] if threads else []
    return command([sys.executable, str(ROOT / "benchmarks" / "peer_ray_data.py"),
                    str(corpus), str(out), "--field", FIELD, *extra])


def ray_embed(corpus: Path, out: Path, extra: list[str] = ()) -> tuple[float, dict]:
    wall = command([sys.executable, "-m", "ray_job", "run", "--input", str(corpus), "--output",
                    str(out), "--text", "{" + FIELD + "}", "--fresh", *extra])
    return wall, json.loads((out / "report.json").read_text())


def measure(records: list[dict], scales: list[int], workdir: Path,
            run_args: list[str] = ()) -> dict:
    lo, hi = min(scales), max(scales)
    docs = {s: s * len(records) for s in scales}
    result = {"machine": machine(), "docs": docs[hi], "scales": scales, "rows": {}}
    rows = result["rows"]
    for name, docs_per_s in in_process(texts_of(records)).items():
        rows[name] = {"docs_per_s": docs_per_s, "kind": "in-process"}
    corpus = {s: scaled_corpus(records, s, workdir / f"corpus-{s}x.jsonl") for s in scales}
    cpus = os.cpu_count() or 1
    for name, threads in ((f"peer ({cpus} torch threads)", cpus), ("peer, Ray's threads", None)):
        wall = peer(corpus[hi], workdir / f"peer-{threads}", threads)
        rows[name] = {"docs_per_s": docs[hi] / wall, "wall_s": wall, "kind": "peer"}
    reports = {}
    for s in scales:
        wall, reports[s] = ray_embed(corpus[s], workdir / f"ours-{s}x", run_args)
        rows[f"ray-embed {s}x, whole command"] = {"docs_per_s": docs[s] / wall, "wall_s": wall,
                                                 "kind": "ours" if s == hi else "ours-small",
                                                 "precision": reports[s]["precision"]}
    if hi > lo:
        encode = reports[hi]["encode_wall_s"] - reports[lo]["encode_wall_s"]
        rows[f"ray-embed marginal {lo}x->{hi}x"] = {"docs_per_s": (docs[hi] - docs[lo]) / encode,
                                                   "kind": "ours-marginal"}
    result["choice"] = reports[hi]["pipeline"]["defaults"].get("precision")
    result["ratios"] = ratios(rows)
    return result


def ratios(rows: dict) -> dict:
    """ray-embed's whole command against the best peer, and its marginal rate against the best
    in-process precision (None where one side was not measured)."""
    def best(kind):
        found = [(r["docs_per_s"], name) for name, r in rows.items() if r["kind"] == kind]
        return max(found) if found else (None, None)

    ours, _ = best("ours")
    marginal, _ = best("ours-marginal")
    peer_rate, peer_name = best("peer")
    inproc, inproc_name = best("in-process")
    return {"vs_best_peer": ours / peer_rate if ours and peer_rate else None,
            "best_peer": peer_name,
            "marginal_vs_best_in_process": marginal / inproc if marginal and inproc else None,
            "best_in_process": inproc_name}


def format_table(result: dict) -> str:
    lines = [f"{result['machine']}; {result['docs']:,} papers at the largest scale",
             "| method | docs/s | whole command s |", "|---|---:|---:|"]
    for name, row in result["rows"].items():
        wall = f"{row['wall_s']:.1f}" if "wall_s" in row else "-"
        lines.append(f"| {name} | {row['docs_per_s']:.1f} | {wall} |")
    r = result["ratios"]
    if r["vs_best_peer"] is not None:
        lines.append(f"ray-embed / best peer ({r['best_peer']}): {r['vs_best_peer']:.2f}x")
    if r["marginal_vs_best_in_process"] is not None:
        lines.append(f"ray-embed marginal / best in-process ({r['best_in_process']}): "
                     f"{r['marginal_vs_best_in_process']:.2f}x")
    if result.get("choice"):
        lines.append(f"auto chose: {result['choice'].get('why')}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--run-arg", action="append", default=[], metavar="ARG",
                        help="a flag for the `ray-embed run` commands (repeatable), e.g. "
                             "--run-arg=--precision --run-arg=fp32")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(load_records(), args.scales, Path(tmp), args.run_arg)
    print(format_table(result))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
