"""`ray-embed bench`: the pipeline's throughput on this cluster before a long run."""
from __future__ import annotations

import tempfile
from pathlib import Path

from .config import JobConfig
from .encode.gpus import gpu_facts
from .encode.model.shape import ModelShape


def gpu_peak_tflops(name: str) -> float | None:
    facts = gpu_facts(name)
    return facts.peak_tflops if facts else None


def mfu(docs_per_s: float, flops_per_doc: float, peak_tflops: float, gpus: int) -> float:
    return docs_per_s * flops_per_doc / (peak_tflops * 1e12 * gpus)


def model_shape(cfg: JobConfig) -> ModelShape | None:
    """The shape `plan` counts FLOPs with, from the model's config.json; None without one."""
    from .encode.model.checkpoint import small_files
    from .encode.model.location import resolve_model_source
    from .encode.model.shape import shape_of_folder

    try:
        return shape_of_folder(small_files(resolve_model_source(cfg.spec.model)))
    except (OSError, ValueError):
        return None


def run_flops_per_doc(report: dict, shape: ModelShape | None) -> float | None:
    """FLOPs of one of the run's docs as the device computed it: the run's real tokens a doc at
    its padding efficiency, counted by `ModelShape.flops_per_doc` as `plan` counts them."""
    if shape is None or not report["docs_per_s"]:
        return None
    tokens_per_doc = report["tokens_per_s"] / report["docs_per_s"]
    return shape.flops_per_doc(tokens_per_doc, report.get("padding_efficiency") or 1.0)


def bench(cfg: JobConfig, docs: int, corpus_size: int,
          gpu_docs_per_s: float | None = None) -> dict:
    """Run the job on `docs` rows (the demo corpus, or the first rows of --input) in a scratch
    directory; return the report plus the steady-state rate (start-up apart), the data path's
    docs per CPU core, the cores one replica needs, MFU on CUDA and a projection.
    `gpu_docs_per_s`: an assumed rate of one GPU replica, for sizing CPUs from a CPU-only run."""
    from .pipeline import run

    with tempfile.TemporaryDirectory(prefix="ray-embed-bench-") as scratch:
        run_cfg = cfg.replace(output=str(Path(scratch) / "out"), fresh=True, limit=docs,
                              demo_docs=max(cfg.options.demo_docs, docs))
        report = run(run_cfg)
    peak = cuda_peak_tflops(report)
    return bench_result(report, docs, corpus_size, gpu_docs_per_s, peak,
                        model_shape(cfg) if peak else None)


def cuda_peak_tflops(report: dict) -> float | None:
    if report["device"] != "cuda":
        return None
    import torch

    return gpu_peak_tflops(torch.cuda.get_device_name(0))


def bench_result(report: dict, docs: int, corpus_size: int, gpu_docs_per_s: float | None = None,
                 peak_tflops: float | None = None, shape: ModelShape | None = None) -> dict:
    """What `bench` says of one run's report (pure). The projection is start-up once plus the
    corpus at the steady-state rate (the whole-run rate of a short run is mostly start-up).
    MFU (on CUDA, given the model's `shape`): the steady rate times the FLOPs of a doc."""
    pipe = report.get("pipeline") or {}
    replicas = max(1, report["replicas"])
    steady = pipe.get("steady_docs_per_s")
    rate = steady or report["docs_per_s"] or 0.0
    startup = pipe.get("startup_s") or 0.0
    per_replica = rate / replicas
    per_core = pipe.get("data_path_docs_per_cpu_s")
    if report["device"] == "cuda":
        replica_rate, replica_rate_from = per_replica, "measured"
    else:
        replica_rate, replica_rate_from = gpu_docs_per_s, "assumed" if gpu_docs_per_s else None
    result = {**report, "docs": docs, "corpus_size": corpus_size,
              "steady_docs_per_s": steady, "startup_s": pipe.get("startup_s"),
              "rate_is_steady": bool(steady), "per_replica_docs_per_s": per_replica,
              "data_path_docs_per_cpu_s": per_core,
              "cores_per_1000_docs_per_s": pipe.get("cores_per_1000_docs_per_s"),
              "replica_docs_per_s": replica_rate, "replica_rate_from": replica_rate_from,
              "cores_per_replica": (replica_rate / per_core if replica_rate and per_core else None),
              "projected_hours": (startup + corpus_size / rate) / 3600 if rate else None,
              "flops_per_doc": run_flops_per_doc(report, shape), "mfu": None}
    if peak_tflops and result["flops_per_doc"]:
        result["mfu"] = mfu(rate, result["flops_per_doc"], peak_tflops, replicas)
    return result


def format_bench(result: dict) -> str:
    rate_kind = "steady state" if result["rate_is_steady"] else \
        "whole run (too few shards for a steady-state rate: use more --docs)"
    lines = [
        f"docs embedded      {result['rows_embedded']:,} on {result['replicas']} replica(s), "
        f"{result['device']} ({result['precision']})",
        f"start-up           {_num(result['startup_s'], '.1f')} s to the first shard "
        f"(Ray, replicas loading the model, the pipeline filling)",
        f"pipeline           {_num(result['steady_docs_per_s'], ',.1f')} docs/s steady state; "
        f"{result['docs_per_s'] or 0:,.1f} docs/s over the whole run, start-up included",
        f"per replica        {result['per_replica_docs_per_s']:,.1f} docs/s ({rate_kind})",
        f"padding efficiency {result['padding_efficiency']:.3f}",
    ]
    if result["data_path_docs_per_cpu_s"]:
        lines.append(f"data path          {result['data_path_docs_per_cpu_s']:,.0f} docs/s per CPU "
                     f"core (read, text, tokenize, write): "
                     f"{result['cores_per_1000_docs_per_s']:.2f} "
                     f"cores per 1,000 docs/s")
    if result["cores_per_replica"]:
        lines.append(f"cores per replica  {result['cores_per_replica']:.1f} to feed one replica at "
                     f"{result['replica_docs_per_s']:,.0f} docs/s "
                     f"({result['replica_rate_from']})")
    elif result["device"] != "cuda" and result["data_path_docs_per_cpu_s"]:
        lines.append("cores per replica  a GPU replica was not measured here: pass "
                     "--gpu-docs-per-s N (its docs/s) to size CPUs for it")
    if result["mfu"] is not None:
        lines.append(f"model FLOP util.   {100 * result['mfu']:.1f}%")
    if result["projected_hours"] is not None:
        lines.append(f"projected          {result['projected_hours']:,.1f} h for "
                     f"{result['corpus_size']:,} papers ({rate_kind} rate, start-up once)")
    return "\n".join(lines)


def _num(value, spec: str) -> str:
    return format(value, spec) if value is not None else "n/a"
