"""`ray-embed plan`: corpus, tokens, projected wall time, GPU-hours, cost and the CPUs per GPU
the data path needs, each with where its number comes from (measured here, measured on a GPU
by the GPU check, projected from a measurement, or estimated from an assumption)."""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

from ..encode.gpus import gpu_facts
from ..encode.model.defaults import Node, choose_defaults
from ..errors import UserError
from .corpus import sample_corpus
from .rates import cpu_rate, gpu_rate, load_results, padding_efficiency

# A run's fixed cost before its first shard, and the share of the in-process data-path rate it
# keeps inside Ray tasks: both from benchmarks/README.md ("CPU path"), rounded to the safe side.
STARTUP_S = 20.0
RAY_TASK_SHARE = 0.8


def make_plan(cfg, gpus: int, gpu_type: str, price: float | None, cpus_per_gpu: float | None,
              sample_docs: int, docs: int | None, results_path: Path | None) -> dict:
    from ..encode.model.facts import describe
    from ..encode.model.loading import resolve_model_source
    from ..encode.model.sizing import model_size
    from ..encode.tokenize import model_recipe, texts_encoder

    if gpus < 0 or sample_docs < 1 or (docs is not None and docs < 1):
        raise UserError("--gpus must be 0 or more, --sample-docs and --docs at least 1")
    if gpus and gpu_facts(gpu_type) is None:
        raise UserError(f"unknown --gpu-type {gpu_type!r} (known: H200, H100, A100, L40S, "
                        f"A10G, A10, V100, L4, T4)")
    if not cfg.spec.inputs:
        raise UserError("plan needs --input (the corpus to plan for)")
    info = describe(cfg.spec, resolve_model_source(cfg.spec.model))
    encode = texts_encoder(model_recipe(info, cfg.spec.trust_remote_code))
    corpus = sample_corpus(cfg, info, encode, sample_docs, docs)
    size = model_size(info, corpus.tokens_per_doc)
    if size is None:
        raise UserError(f"cannot plan for {info.name}: no encoder config.json to size it from")
    node = Node("cuda", cpus_per_gpu or 0.0, gpu_type) if gpus else Node("cpu")
    defaults = choose_defaults(size, node, cfg.options.shard_rows)
    budget = cfg.options.max_batch_tokens or defaults.max_batch_tokens
    padding = padding_efficiency(corpus.sample_token_lengths, budget,
                                 cfg.options.max_batch_rows, cfg.options.shard_rows)
    if gpus:
        precision = cfg.spec.precision if cfg.spec.precision != "auto" else defaults.precision
        rate = gpu_rate(size.shape, info.max_seq_length, corpus.tokens_per_doc, padding,
                        gpu_type, precision, load_results(results_path))
    else:
        texts_ids = encode(corpus_texts(cfg, info, min(sample_docs, 256)))
        rate = cpu_rate(cfg, info, texts_ids)
    cpu_s = corpus.data_path_cpu_s_per_doc / RAY_TASK_SHARE
    needed = math.ceil(rate.docs_per_s * cpu_s) + 1 if gpus else None
    per_gpu = rate.docs_per_s
    limited = None
    if gpus and cpus_per_gpu and needed > cpus_per_gpu:
        per_gpu = max(1.0, cpus_per_gpu - 1) / cpu_s
        limited = f"the data path: {cpus_per_gpu:g} CPUs per GPU feed {per_gpu:,.0f} docs/s"
    units = max(1, gpus)
    wall = STARTUP_S + corpus.rows / (units * per_gpu) if corpus.rows else None
    gpu_hours = gpus * wall / 3600 if wall and gpus else None
    return {"model": info.name, "max_seq_length": info.max_seq_length,
            "params": size.param_bytes // 4, "gpus": gpus, "gpu_type": gpu_type if gpus else None,
            "corpus": {"rows": corpus.rows, "rows_how": corpus.rows_how,
                       "sample_rows": corpus.sample_rows, "sample_rejected": corpus.sample_rejected,
                       "tokens_per_doc": round(corpus.tokens_per_doc, 1),
                       "tokens_p95": corpus.tokens_p95,
                       "tokens": (round(corpus.rows * corpus.tokens_per_doc) if corpus.rows
                                  else None)},
            "padding_efficiency": round(padding, 3),
            "flops_per_doc": size.shape.flops_per_doc(corpus.tokens_per_doc, padding),
            "rate": {**asdict(rate), "docs_per_s": round(rate.docs_per_s, 1)},
            "limited_by": limited, "docs_per_s_per_gpu": round(per_gpu, 1),
            "data_path_cpu_s_per_1000_docs": round(1000 * cpu_s, 3),
            "cpus_per_gpu_needed": needed, "cpus_per_gpu_given": cpus_per_gpu,
            "wall_s": round(wall, 1) if wall else None,
            "gpu_hours": round(gpu_hours, 3) if gpu_hours else None,
            "price_per_gpu_hour": price,
            "cost": round(gpu_hours * price, 2) if gpu_hours and price else None,
            "defaults": {**asdict(defaults), "max_batch_tokens": budget,
                         "why": list(defaults.why)}}


def corpus_texts(cfg, info, n: int) -> list[str]:
    """The first `n` texts, rendered as the run renders them (for the CPU run)."""
    from ..read.inputs import SqlSpec, resolve_inputs
    from ..read.sample import first_texts
    from ..read.text import TextTemplate

    spec = cfg.spec
    template = TextTemplate(spec.text, info.sep_token, spec.clean_whitespace,
                            spec.on_missing_field)
    return first_texts(resolve_inputs(spec.inputs), template, spec.id_field,
                       SqlSpec(spec.id_field, spec.table, spec.query), n)


def format_plan(p: dict) -> str:
    c, r = p["corpus"], p["rate"]
    where = f"{p['gpus']} x {p['gpu_type']}" if p["gpus"] else "this machine's CPU"
    rows = f"{c['rows']:,} ({c['rows_how']})" if c["rows"] else \
        f"unknown ({c['rows_how']}: give --docs N)"
    lines = [
        f"model              {p['model']} ({p['params'] / 1e6:,.0f}M parameters, "
        f"{p['max_seq_length']} tokens)",
        f"corpus             {rows} rows",
        f"tokens             {c['tokens_per_doc']:,.1f} a doc (p95 {c['tokens_p95']:,.0f}; "
        f"measured on the first {c['sample_rows']:,} rows, {c['sample_rejected']} rejected)"
        + (f", {c['tokens']:,} in all" if c["tokens"] else ""),
        f"padding efficiency {p['padding_efficiency']:.3f} (the replica's micro-batches over the "
        f"sample, {p['defaults']['max_batch_tokens']:,}-token budget)",
        f"rate               {r['docs_per_s']:,.0f} docs/s per {'GPU' if p['gpus'] else 'machine'}"
        f" [{r['how']}]: {r['detail']}",
    ]
    if p["limited_by"]:
        lines.append(f"limited by         {p['limited_by']}")
    if p["gpus"]:
        lines.append(f"CPUs per GPU       {p['cpus_per_gpu_needed']} to feed it (data path "
                     f"{p['data_path_cpu_s_per_1000_docs']:.2f} CPU-s per 1,000 docs: measured "
                     f"here in-process, /{RAY_TASK_SHARE} for Ray tasks; +1 for the replica)")
    if p["wall_s"]:
        wall = (f"{p['wall_s'] / 3600:,.2f} h" if p["wall_s"] >= 3600
                else f"{p['wall_s'] / 60:,.1f} min")
        lines.append(f"wall time          {wall} on {where} [projected: {STARTUP_S:g} s "
                     f"start-up + rows / rate]")
    if p["gpu_hours"]:
        cost = f", {p['cost']:,.2f} at {p['price_per_gpu_hour']:g} per GPU-hour" if p["cost"] \
            else " (give --price-per-gpu-hour P for the cost)"
        lines.append(f"GPU-hours          {p['gpu_hours']:,.2f}{cost}")
    d = p["defaults"]
    lines.append(f"defaults           {d['precision']}, {d['max_batch_tokens']:,} tokens, "
                 f"{d['replicas_per_gpu']} replica(s) per GPU (encode/model/defaults.py)")
    return "\n".join(lines)
