"""The GPU check's measurements around the encoder: replicas sharing one GPU, the data path's
CPU cost per document (how many CPUs a GPU needs), the OOM backoff at a memory cap, CUDA graphs,
and the adapter model (in a child process under the carried transformers 4 stack)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from . import children, corpus
from .graphs import BucketedRunner, bucket_plan
from .record import Results, Skip
from .steps import Check, free
from .timing import min_cosine, repeat_for, reset_peak_memory

PROCESS_COUNTS = (1, 2, 4)
COPIES = 16                 # of the sample, for the OOM backoff


def processes(check: Check) -> None:
    """1, 2 and 4 MiniLM replicas (fp16) in their own processes on one GPU, started together;
    the aggregate rate over the span from the first start to the last end."""
    key, ids = "minilm", check.ids["minilm"]
    ids_path = children.write_ids(check.scratch / "minilm-ids.npz", ids)
    single = check.rates.get((key, check.half)) or 1000.0
    target_s = 0.0 if check.dry_run else 4.0
    counts = (2,) if check.dry_run else PROCESS_COUNTS       # a dry run: the barrier, once
    from .models import job_settings

    settings = job_settings(check.specs[key], check.folders[key])
    for n in counts:
        passes = max(1, round(target_s * single / len(ids)))
        run = check.scratch / f"procs-{n}"
        run.mkdir()
        specs = [{"settings": settings, "precision": check.half, "device": check.device,
                  "threads": check.threads,
                  "ids": str(ids_path), "passes": passes, "ready": str(run / f"ready-{i}"),
                  "go": str(run / "go"), "result": str(run / f"result-{i}.json")}
                 for i in range(n)]
        procs = [children.spawn("encode", s, run) for s in specs]
        try:
            children.wait_for([Path(s["ready"]) for s in specs], procs, 240)
            (run / "go").touch()
            children.wait_for([Path(s["result"]) for s in specs], procs, 240)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                p.wait()
        got = [json.loads(Path(s["result"]).read_text()) for s in specs]
        span = max(g["ended"] for g in got) - min(g["started"] for g in got)
        docs = sum(g["docs"] for g in got)
        check.results.row("processes", model=key,
                          variant=f"{check.half}, {n} process(es) on one {check.device}",
                          docs_per_s=round(docs / span, 1), seconds=round(span, 3),
                          passes=passes, per_process_docs_per_s=[
                              round(g["docs"] / (g["ended"] - g["started"]), 1) for g in got])


def data_path(check: Check) -> None:
    """CPU-seconds per 1,000 docs of the pipeline's own read, text, tokenize and shard-encode
    functions, in this process, without Ray (each task of a run does these; Ray's own
    overhead per task comes on top): with the replica's docs/s, the CPUs one GPU needs."""
    from ray_job.encode.encoder import constant_column, embedding_array
    from ray_job.encode.tokenize import texts_encoder, tokenize_rows, tokenizer_recipe
    from ray_job.read.inputs import ReadUnit
    from ray_job.read.sources import rows_from_unit
    from ray_job.read.text import TextTemplate, text_byte_cap
    from ray_job.rundir.shards import encode_shard

    records = corpus.load_records(check.sample)
    rows = 400 if check.dry_run else 10000
    path = check.scratch / "datapath.jsonl"
    with open(path, "w") as fh:
        for n in range(rows):
            r = records[n % len(records)]
            fh.write(json.dumps({**r, "id": f"{r['id']}-{n // len(records)}"}) + "\n")
    for key in ("minilm", "bert-base", "roberta-large"):
        spec, folder = check.specs[key], check.folders[key]
        sep = "</s>" if spec.arch == "roberta" else "[SEP]"
        template = TextTemplate(corpus.TEMPLATE, sep, missing="empty",
                                max_bytes=text_byte_cap(spec.max_len))
        encode = texts_encoder(tokenizer_recipe(str(folder), spec.max_len))
        cpu = [time.process_time()]
        table = rows_from_unit(ReadUnit(0, str(path), "jsonl", None, 0, None), template,
                               "id").table
        cpu.append(time.process_time())
        tokenized, _ = tokenize_rows(encode, table)
        cpu.append(time.process_time())
        n = tokenized.num_rows
        lengths = np.diff(tokenized.column("input_ids").combine_chunks().offsets.to_numpy())
        out = pa.table({"key": tokenized.column("key"), "id": tokenized.column("id"),
                        "text_hash": tokenized.column("text_hash"),
                        "embedding": embedding_array(np.zeros((n, spec.hidden), np.float32)),
                        "n_tokens": pa.array(lengths.astype(np.int32)),
                        "n_computed": pa.array(lengths.astype(np.int32)),
                        "device": constant_column("cuda", n),
                        "precision": constant_column("fp16", n)})
        encode_shard(out)
        cpu.append(time.process_time())
        parts = np.diff(cpu) * 1000 / n
        total = float(parts.sum())
        gpu_rate = check.rates.get((key, check.half))
        check.results.row("data_path", model=key, variant="read + text + tokenize + shard, "
                          "CPU-s per 1,000 docs", docs=n,
                          cpu_s_per_1000_docs={"read_text": round(parts[0], 3),
                                               "tokenize": round(parts[1], 3),
                                               "shard": round(parts[2], 3),
                                               "total": round(total, 3)},
                          docs_per_cpu_s=round(1000 / total, 1),
                          cpus_per_replica=round(gpu_rate * total / 1000, 2)
                          if gpu_rate else None)


def oom_backoff(check: Check) -> None:
    """A token budget far over what fits under a memory cap: every row is still embedded (no
    reject), the replica's budget halves at each out-of-memory, the vectors match the uncapped
    ones. The sample 16 times over, so that micro-batches at a 1M-token budget are large (the
    0.97 padding cut keeps them near 50k tokens on the sample alone).
    On CUDA the cap is real (`set_per_process_memory_fraction`: the weights plus what half the
    largest micro-batch needs, scaled from what the default budget's largest one needed); on a
    CPU (`--dry-run`) the forward pass raises torch.OutOfMemoryError above half the largest
    micro-batch's tokens instead."""
    key = "bert-base"
    ids = pa.concat_arrays([check.ids[key]] * COPIES)
    plain = check.encoder(key, check.half)
    reset_peak_memory(check.device)
    weights = torch.cuda.memory_allocated() if check.device == "cuda" else 0
    expected, _ = plain.embed_token_lists(ids)
    needed = (torch.cuda.max_memory_allocated() - weights) if check.device == "cuda" else 0
    plain_largest = largest_micro_batch(ids, plain.max_batch_tokens,
                                        plain.max_batch_rows)
    free(plain)
    big = 2**20
    encoder = check.encoder(key, check.half, max_batch_tokens=big, max_batch_rows=8192)
    largest = largest_micro_batch(ids, big, 8192)
    if check.device == "cuda" and largest < 1.5 * plain_largest:
        raise Skip(f"the largest micro-batch at {big:,} tokens ({largest:,}) is not much over "
                   f"the default's ({plain_largest:,}): nothing to back off from")
    cap_tokens = None if check.device == "cuda" else max(512, largest // 2)
    counted = count_out_of_memory(encoder, cap_tokens)
    if check.device == "cuda":
        torch.cuda.empty_cache()
        cap = torch.cuda.memory_allocated() + max(needed, needed * largest / 2 / plain_largest)
        torch.cuda.set_per_process_memory_fraction(
            min(1.0, cap / torch.cuda.get_device_properties(0).total_memory))
    try:
        calls = [oom_call(encoder, ids, expected, counted) for _ in range(2)]
    finally:
        if check.device == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0)
        free(encoder)
    cap_text = (f"a {cap / 2**30:.2f} GiB cap" if check.device == "cuda"
                else f"a simulated OOM over {cap_tokens:,} tokens")
    check.results.row("oom_backoff", model=key, variant=f"{check.half}, {big:,}-token budget under "
                      f"{cap_text}", largest_micro_batch_tokens=largest, calls=calls,
                      min_cos=min(c["min_cos_vs_uncapped"] for c in calls))
    if any(c["rows_failed"] for c in calls) or not calls[0]["out_of_memory_errors"]:
        raise RuntimeError(f"the backoff did not hold (no OOM, or rows lost): {calls}")


def largest_micro_batch(ids: pa.ListArray, budget: int, rows: int) -> int:
    from ray_job.encode.batching import length_order, token_budget_batches

    lengths = np.diff(ids.offsets.to_numpy())
    ordered = lengths[length_order(lengths)]
    return max(int(ordered[b.start]) * (b.stop - b.start)
               for b in token_budget_batches(ordered, budget, rows))


def oom_call(encoder, ids, expected: np.ndarray, counted: dict) -> dict:
    failed: dict = {}
    before, ooms = encoder.max_batch_tokens, counted["ooms"]
    started = time.perf_counter()
    vectors, _ = encoder.embed_token_lists(ids, failed)
    return {"seconds": round(time.perf_counter() - started, 3), "budget_before": before,
            "budget_after": encoder.max_batch_tokens,
            "out_of_memory_errors": counted["ooms"] - ooms, "rows_failed": len(failed),
            "min_cos_vs_uncapped": min_cosine(vectors, expected)}


def count_out_of_memory(encoder, cap_tokens: int | None) -> dict:
    """Wrap the replica's forward pass to count out-of-memory errors (and, with `cap_tokens`,
    raise one above that many tokens)."""
    counted = {"ooms": 0}
    embed = encoder.model.embed

    def counting(ids, mask):
        try:
            if cap_tokens is not None and ids.numel() > cap_tokens:
                raise torch.OutOfMemoryError(f"simulated: {ids.numel()} tokens > {cap_tokens}")
            return embed(ids, mask)
        except torch.OutOfMemoryError:
            counted["ooms"] += 1
            raise

    encoder.model.embed = counting
    return counted


def cuda_graphs(check: Check) -> None:
    """MiniLM (fp16 on CUDA): shape-bucketed micro-batches eagerly and replayed as CUDA graphs,
    at two token budgets, against the replica's own micro-batches."""
    key = "minilm"
    ids = check.ids[key]
    values, offsets = ids.values.to_numpy().astype(np.int64), ids.offsets.to_numpy()
    lengths = np.diff(offsets)
    dtype = torch.float16 if check.device == "cuda" else None
    for budget in (4096, 16384):
        encoder = check.encoder(key, check.half, max_batch_tokens=budget)
        plan = bucket_plan(lengths, budget, encoder.max_batch_rows, step=32)
        padded = sum(b.capacity * b.width for b in plan)
        for name, capture in (("bucketed, eager", False), ("bucketed, CUDA graphs", True)):
            runner = BucketedRunner(encoder.model.embed, encoder.torch_device, encoder.pad_id,
                                    encoder.model.info.dim, dtype, capture)
            started = time.perf_counter()
            vectors = runner.run(values, offsets, plan)
            first = time.perf_counter() - started
            passes, seconds = repeat_for(
                lambda runner=runner, plan=plan: runner.run(values, offsets, plan), check.min_s)
            ref = check.reference.get(key)
            check.results.row(
                "cuda_graphs", model=key, variant=f"{check.half}, {budget:,} tokens, {name}"
                + ("" if runner.capture or not capture else " (not captured: no CUDA)"),
                docs_per_s=round(len(ids) * passes / seconds, 1),
                tokens_per_s=round(int(lengths.sum()) * passes / seconds),
                padding_efficiency=round(int(lengths.sum()) / padded, 4),
                graphs=len(runner.graphs), capture_s=round(runner.capture_s, 3),
                first_pass_s=round(first, 3), passes=passes,
                min_cos=min_cosine(vectors, ref) if ref is not None else None)
            free(runner)
        free(encoder)


def adapter(check: Check) -> None:
    """BERT-base + adapter, measured in a child under the carried transformers 4 stack (or
    this interpreter's own, where it has `adapters`); its rows join these results."""
    result = check.scratch / "adapter-results.json"
    spec = {"scratch": str(check.scratch / "adapter"), "sample": str(check.sample),
            "docs": check.docs, "device": check.device, "dry_run": check.dry_run,
            "min_s": check.min_s, "peaks": [check.peaks.datasheet, check.peaks.measured],
            "tokenizer_from": str(check.folders["minilm"]), "result": str(result),
            "precisions": ["fp32", "fp16", "fp16-weights", "bf16"],
            "budgets": [65536] if not check.dry_run else [4096]}
    proc = children.spawn("adapter", spec, check.scratch, check.adapter_site)
    try:
        proc.wait(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        merge_child_rows(check.results, result)
    if proc.returncode != 0:
        raise RuntimeError(f"adapter child exited {proc.returncode}: "
                           f"{children.log_tail(proc, 600)}")


def merge_child_rows(results: Results, path: Path) -> None:
    if not path.is_file():
        return
    child = json.loads(path.read_text())
    for row in child.get("rows", []):
        results.row(**{**row, "transformers": child.get("transformers")})
