"""Replica feeding: pad_rows (per-row loop vs vectorised) and the encoder in-process (no Ray).

    .venv/bin/python benchmarks/encoder_feed.py [--docs 2000] [--precisions fp32 bf16 bf16-weights]

Texts: the real arXiv sample, '{title}[SEP]{abstract}', cycled to --docs; bundled MiniLM.
Encoder modes, each on the same token ids:
  before       the former inner loop: per-row padding loop, a host copy after every micro-batch
               (fp32)
  <precision>  `Encoder.embed_token_lists` as built now (vectorised padding, the feeder,
               outputs kept on the device until one copy per call) in that precision
Min cosine is against the `fp32` mode. Modes alternate over --rounds and the best of each is
kept; CPU time is reported beside wall time, since a shared machine's load moves wall time.
Prints one JSON line per measurement and a summary.
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "arxiv-metadata-sample-1000.jsonl"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from oracles import pad_rows_loop  # noqa: E402  (the former per-row loop)

from ray_job.config import JobConfig  # noqa: E402
from ray_job.encode.batching import length_order, pad_rows, token_budget_batches  # noqa: E402
from ray_job.encode.encoder import Encoder  # noqa: E402
from ray_job.encode.model.loading import bundled_model_path  # noqa: E402
from ray_job.encode.model.precision import autocast, cpu_has_native_bf16  # noqa: E402
from ray_job.encode.tokenize import load_tokenizer, tokenize_texts  # noqa: E402
from ray_job.rundir.replica import ReplicaSpec  # noqa: E402


def best_us(fn, repeats: int, number: int) -> float:
    """Best of `repeats` timings of `number` calls, in microseconds of this process's CPU time
    per call (single-threaded numpy: less disturbed by other processes than wall time)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(number):
            fn()
        best = min(best, (time.process_time() - start) / number)
    return best * 1e6


def pad_benchmark(values, offsets, rows, label: str, number: int) -> dict:
    want, got = pad_rows_loop(values, offsets, rows, 0), pad_rows(values, offsets, rows, 0)
    assert all(np.array_equal(w, g) for w, g in zip(want, got, strict=True))
    loop = best_us(lambda: pad_rows_loop(values, offsets, rows, 0), 5, number)
    vec = best_us(lambda: pad_rows(values, offsets, rows, 0), 5, number)
    width = int((offsets[rows + 1] - offsets[rows]).max())
    return {"what": "pad_rows", "batch": label, "rows": len(rows), "width": width,
            "loop_us": round(loop, 1), "vectorised_us": round(vec, 1),
            "speedup": round(loop / vec, 2)}


def corpus_pad_benchmark(values, offsets, batches: list[np.ndarray]) -> dict:
    """Padding every micro-batch of the corpus once (the encoder's cuts), loop vs vectorised."""
    loop = best_us(lambda: [pad_rows_loop(values, offsets, rows, 0) for rows in batches], 3, 1)
    vec = best_us(lambda: [pad_rows(values, offsets, rows, 0) for rows in batches], 3, 1)
    return {"what": "pad_rows", "batch": f"all {len(batches)} micro-batches of the corpus",
            "rows": sum(map(len, batches)), "width": "-", "loop_us": round(loop, 1),
            "vectorised_us": round(vec, 1), "speedup": round(loop / vec, 2)}


def before(enc: Encoder, input_ids) -> np.ndarray:
    """The encoder's former inner loop (fp32): per-row padding, a host copy per micro-batch."""
    offsets = input_ids.offsets.to_numpy().astype(np.int64)
    values = input_ids.values.to_numpy()
    lengths = np.diff(offsets)
    order = length_order(lengths)
    out = np.zeros((len(lengths), enc.model.info.dim), dtype=np.float32)
    for part in token_budget_batches(lengths[order], enc.max_batch_tokens,
                                     enc.max_batch_rows):
        rows = order[part]
        ids, mask = pad_rows_loop(values, offsets, rows, enc.pad_id)
        with torch.inference_mode(), autocast(enc.torch_device.type, enc.precision):
            emb = enc.model.embed(torch.from_numpy(ids).to(enc.torch_device),
                                  torch.from_numpy(mask).to(enc.torch_device))
        out[rows] = emb.float().cpu().numpy()
    return out


def min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


def machine() -> dict:
    name = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                 if line.startswith("model name")), platform.processor())
    return {"cpu": name, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "native_bf16": cpu_has_native_bf16(), "cuda": torch.cuda.is_available()}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "bf16-weights"])
    ap.add_argument("--no-before", action="store_true", help="skip the former loop")
    ap.add_argument("--pad-number", type=int, default=200, help="calls per pad timing")
    ap.add_argument("--pad-only", action="store_true", help="only the pad_rows timings")
    ap.add_argument("--rounds", type=int, default=1, help="runs of every mode, best kept")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps({"what": "machine", **machine()}), flush=True)

    records = [json.loads(line) for line in open(SAMPLE)]
    texts = [" ".join(r["title"].split()) + "[SEP]" + " ".join(r["abstract"].split())
             for r in itertools.islice(itertools.cycle(records), args.docs)]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = JobConfig.of()
    encoders = {p: Encoder(ReplicaSpec.of(cfg.spec, cfg.options, bundled_model_path(), None,
                                          device, p)) for p in args.precisions}
    first = next(iter(encoders.values()))
    info = first.model.info
    ids = tokenize_texts(load_tokenizer(info.tokenizer_source), texts, info.max_seq_length)
    offsets = ids.offsets.to_numpy().astype(np.int64)
    values = ids.values.to_numpy()
    lengths = np.diff(offsets)
    tokens = int(lengths.sum())

    results = []
    order = length_order(lengths)
    parts = token_budget_batches(lengths[order], first.max_batch_tokens,
                                 first.max_batch_rows)
    rng = np.random.default_rng(0)
    near_250 = rng.choice(np.flatnonzero(lengths >= 200), size=256)   # 256 rows x ~250 tokens
    results.append(pad_benchmark(values, offsets, near_250, "256 rows", args.pad_number))
    print(json.dumps(results[-1]), flush=True)
    results.append(corpus_pad_benchmark(values, offsets, [order[p] for p in parts]))
    print(json.dumps(results[-1]), flush=True)

    runs = [] if args.pad_only else (
        [("before", lambda: before(encoders.get("fp32") or first, ids))]
        if not args.no_before else []) + [
        (p, lambda e=e: e.embed_token_lists(ids)[0]) for p, e in encoders.items()]
    outputs, best = {}, {}
    for _ in range(args.rounds):                 # modes alternate, so load changes hit them all
        for name, fn in runs:
            start, cpu_start = time.perf_counter(), time.process_time()
            outputs[name] = fn()
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            print(json.dumps({"what": "encoder-round", "mode": name, "seconds": round(seconds, 2),
                              "cpu_seconds": round(cpu_seconds, 2)}), flush=True)
            was = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(was[0], seconds), min(was[1], cpu_seconds))
    for name, (seconds, cpu_seconds) in best.items():
        results.append({"what": "encoder", "mode": name, "device": device, "docs": len(texts),
                        "tokens": tokens, "threads": torch.get_num_threads(),
                        "seconds": round(seconds, 2),
                        "cpu_seconds": round(cpu_seconds, 2),   # all threads of this process
                        "docs_per_s": round(len(texts) / seconds, 1),
                        "docs_per_cpu_s": round(len(texts) / cpu_seconds, 1)})
        print(json.dumps(results[-1]), flush=True)
    reference = outputs.get("fp32")
    for r in results:
        if r["what"] == "encoder" and reference is not None:
            r["min_cos_vs_fp32"] = round(min_cos(outputs[r["mode"]], reference), 6)
    print("summary:")
    for r in results:
        if r["what"] == "encoder":
            print(f"  encoder {r['mode']:>13}: {r['docs_per_s']:7.1f} docs/s wall, "
                  f"{r['docs_per_cpu_s']:7.1f} docs per CPU-second "
                  f"(best of {args.rounds}, {r['docs']} docs, {r['threads']} threads), "
                  f"min cos vs fp32 {r.get('min_cos_vs_fp32', '-')}")
        else:
            print(f"  pad_rows {r['rows']} x {r['width']} ({r['batch']}): loop {r['loop_us']} us, "
                  f"vectorised {r['vectorised_us']} us CPU time per call ({r['speedup']}x)")
    return results


if __name__ == "__main__":
    main()
