"""`ray-embed bench`: the pipeline's throughput on this cluster before a long run."""
from __future__ import annotations

import tempfile
from pathlib import Path

from .config import JobConfig

# Dense fp16/bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets.
GPU_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "A10G": 125.0, "A10": 125.0,
                   "L40S": 362.0, "L4": 121.0, "V100": 125.0, "T4": 65.0}


def flops_per_token(param_bytes: int, bytes_per_param: int = 4, embedding_params: int = 0) -> float:
    """2 FLOPs per weight per token (the attention term is small at these lengths)."""
    return 2.0 * (param_bytes / bytes_per_param - embedding_params)


def gpu_peak_tflops(name: str) -> float | None:
    for key, peak in GPU_PEAK_TFLOPS.items():
        if key in name:
            return peak
    return None


def mfu(tokens_per_s: float, flops_token: float, peak_tflops: float, gpus: int) -> float:
    return tokens_per_s * flops_token / (peak_tflops * 1e12 * gpus)


def bench(cfg: JobConfig, docs: int, corpus_size: int) -> dict:
    """Run the job on `docs` rows (the demo corpus, or the first rows of --input) in a scratch
    directory; return the report plus per-replica rate, MFU on CUDA and a projection."""
    from .pipeline import run

    with tempfile.TemporaryDirectory(prefix="ray-embed-bench-") as scratch:
        run_cfg = cfg.replace(output=str(Path(scratch) / "out"), fresh=True, limit=docs,
                              demo_docs=max(cfg.options.demo_docs, docs))
        report = run(run_cfg)
    rate = report["docs_per_s"] or 0.0
    result = {**report, "docs": docs, "per_replica_docs_per_s": rate / max(1, report["replicas"]),
              "projected_hours": corpus_size / rate / 3600 if rate else None,
              "corpus_size": corpus_size, "mfu": None}
    if report["device"] == "cuda":
        import torch

        peak = gpu_peak_tflops(torch.cuda.get_device_name(0))
        if peak:
            result["mfu"] = mfu(report["tokens_per_s"], flops_per_token(report["param_bytes"]),
                                peak, report["replicas"])
    return result


def format_bench(result: dict) -> str:
    lines = [
        f"docs embedded      {result['rows_embedded']:,} on {result['replicas']} replica(s), "
        f"{result['device']} ({result['precision']})",
        f"pipeline           {result['docs_per_s']:,.1f} docs/s, {result['tokens_per_s']:,.0f} tokens/s "
        "(including replica start-up: a long run is faster)",
        f"per replica        {result['per_replica_docs_per_s']:,.1f} docs/s",
        f"padding efficiency {result['padding_efficiency']:.3f}",
    ]
    if result["mfu"] is not None:
        lines.append(f"model FLOP util.   {100 * result['mfu']:.1f}%")
    if result["projected_hours"] is not None:
        lines.append(f"projected          {result['projected_hours']:,.1f} h for "
                     f"{result['corpus_size']:,} papers at this rate")
    return "\n".join(lines)
