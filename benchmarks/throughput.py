"""Throughput of ray_job against the baselines users run today, on the same data and machine.

    .venv/bin/python benchmarks/throughput.py [--scales 1 4] [--out benchmarks/results]

Methods (all on the real arXiv sample, texts '{title}[SEP]{abstract}', bundled MiniLM):
  notebook       the arXiv notebook's loop: file order, batches of 64, pad to batch max, fp32
  st-fp32        sentence-transformers encode(batch_size=64), fp32
  st-best        encode under the best precision this CPU runs natively (skipped without one)
  ours-inproc    ray_job's encoder in this process: length sort + token budget, precision auto
  pipeline-Nx    the whole `ray-embed run` command on an Nx corpus (new ids), local Ray
The pipeline's docs/s is the marginal rate between the smallest and largest scale, so Ray and
replica start-up are not counted; whole-command rates are reported too.
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

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "arxiv-metadata-sample-1000.jsonl"
sys.path.insert(0, str(ROOT))

from ray_job.config import JobConfig  # noqa: E402
from ray_job.encode.encoder import Encoder  # noqa: E402
from ray_job.encode.models import bundled_model_path  # noqa: E402
from ray_job.encode.precision import cpu_has_native_bf16, pick_precision  # noqa: E402
from ray_job.encode.tokenize import load_tokenizer, tokenize_texts  # noqa: E402
from ray_job.rundir.replica import ReplicaSpec  # noqa: E402


def load_texts() -> tuple[list[dict], list[str]]:
    records = [json.loads(line) for line in open(SAMPLE)]
    texts = [" ".join(r["title"].split()) + "[SEP]" + " ".join(r["abstract"].split())
             for r in records]
    return records, texts


def scaled_corpus(records: list[dict], scale: int, path: Path) -> Path:
    with open(path, "w") as fh:
        for copy in range(scale):
            for r in records:
                fh.write(json.dumps({**r, "id": f"{r['id']}-{copy}"}) + "\n")
    return path


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def notebook_loop(model, texts, max_len):
    tok = model.tokenizer
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            f = tok(texts[i:i + 64], padding=True, truncation=True, max_length=max_len,
                    return_tensors="pt", return_token_type_ids=False)
            out.append(model({"input_ids": f["input_ids"],
                              "attention_mask": f["attention_mask"]})["sentence_embedding"])
    return torch.cat(out).numpy()


def ours_inprocess(texts):
    cfg = JobConfig.of(precision="auto")
    replica = ReplicaSpec.of(cfg.spec, cfg.options, bundled_model_path(), None, "cpu",
                             pick_precision(cfg.spec.precision, "cpu"))
    enc = Encoder(replica, threads=os.cpu_count())
    tok = load_tokenizer(enc.model.info.tokenizer_source)
    ids = tokenize_texts(tok, texts, enc.model.info.max_seq_length)
    emb, computed = enc.embed_token_lists(ids)
    real = int(np.diff(ids.offsets.to_numpy()).sum())
    return emb, real / int(computed.sum()), enc.precision


def pipeline_run(corpus: Path, out: Path, extra: list[str] = ()) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "ray_job", "run", "--input", str(corpus), "--output", str(out),
           "--fresh", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    return json.loads((out / "report.json").read_text()), wall


def min_cos(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return float((a * b).sum(1).min())


def n_tokens(model, texts, max_len):
    return sum(len(x) for x in model.tokenizer(texts, truncation=True, max_length=max_len)["input_ids"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--run-arg", action="append", default=[], metavar="ARG",
                        help="a flag for the `ray-embed run` commands (repeatable), e.g. "
                             "--run-arg=--threads --run-arg=1")
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    records, texts = load_texts()
    model = SentenceTransformer(bundled_model_path(), device="cpu")
    max_len = model.max_seq_length
    tokens = n_tokens(model, texts, max_len)
    rows: dict[str, dict] = {}

    ref, t = timed(lambda: model.encode(texts, batch_size=64))
    rows["st-fp32"] = {"s": t, "cos": 1.0}
    nb, t = timed(lambda: notebook_loop(model, texts, max_len))
    rows["notebook"] = {"s": t, "cos": min_cos(nb, ref)}
    if cpu_has_native_bf16():
        def st_bf16():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model.encode(texts, batch_size=64)
        out, t = timed(st_bf16)
        rows["st-best(bf16)"] = {"s": t, "cos": min_cos(out, ref)}
    (emb, eff, prec), t = timed(lambda: ours_inprocess(texts))
    rows[f"ours-inproc({prec})"] = {"s": t, "cos": min_cos(emb, ref), "padding": eff}

    reports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            corpus = scaled_corpus(records, scale, Path(tmp) / f"corpus-{scale}x.jsonl")
            report, wall = pipeline_run(corpus, Path(tmp) / f"out-{scale}x", args.run_arg)
            reports[scale] = (report, wall)
            rows[f"pipeline-{scale}x (whole command)"] = {
                "s": wall / scale, "cos": None, "padding": report["padding_efficiency"]}
        lo, hi = min(args.scales), max(args.scales)
        if hi > lo:
            docs = (hi - lo) * len(texts)
            marginal = reports[hi][0]["encode_wall_s"] - reports[lo][0]["encode_wall_s"]
            rows[f"pipeline marginal {lo}x->{hi}x"] = {
                "s": marginal * len(texts) / docs, "cos": None,
                "padding": reports[hi][0]["padding_efficiency"]}
        h5_first = Path(tmp) / f"out-{lo}x" / "embeddings.h5"
        import h5py
        with h5py.File(h5_first) as h5:
            rows[f"pipeline-{lo}x (whole command)"]["cos"] = min_cos(h5["embeddings"][:len(texts)], ref)

    base = {k: len(texts) / v["s"] for k, v in rows.items()}
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
                   f"native bf16: {cpu_has_native_bf16()}, auto precision: "
                   f"{pick_precision('auto', 'cpu')}",
        "docs": len(texts), "tokens": tokens,
        "rows": {k: {**v, "docs_per_s": base[k], "tokens_per_s": tokens / v["s"],
                     "x_notebook": base[k] / base["notebook"], "x_st_fp32": base[k] / base["st-fp32"]}
                 for k, v in rows.items()},
    }
    print(result["machine"])
    print(f"{'method':38} {'docs/s':>8} {'tokens/s':>9} {'x nb':>6} {'x st32':>7} {'min cos':>8} {'pad eff':>8}")
    for k, v in result["rows"].items():
        cos = f"{v['cos']:.5f}" if v["cos"] is not None else "-"
        pad = f"{v['padding']:.3f}" if v.get("padding") else "-"
        print(f"{k:38} {v['docs_per_s']:8.1f} {v['tokens_per_s']:9.0f} {v['x_notebook']:6.2f} "
              f"{v['x_st_fp32']:7.2f} {cos:>8} {pad:>8}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(9, 4))
        ax.barh(list(base), list(base.values()))
        ax.set_xlabel("docs/s (real arXiv sample, higher is better)")
        ax.set_title(result["machine"], fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "throughput.png", dpi=100)
    except ImportError:
        print("(pip install matplotlib for the PNG chart)")


if __name__ == "__main__":
    main()
