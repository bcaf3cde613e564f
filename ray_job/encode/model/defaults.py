"""Defaults that follow from the model and the node (pure): replicas per GPU, the token budget
of a micro-batch, the precision, and the CPUs per GPU the data path needs to keep up.

Each is a setting the user may give (`gpus_per_replica`, `max_batch_tokens`, `precision`);
given, it wins. On CPUs the defaults are what they always were (16,384 tokens; bf16 where the
CPU multiplies bf16 natively, else fp32; replicas sized by `resources.plan_resources`), so CPU
runs give the same vectors as before. The rules on a GPU node:

* **precision**: fp16 autocast; fp16 *weights* when the model's fp32 weights would take more
  than a quarter of the GPU's memory (a 1B-parameter encoder on a 16 GiB card), so that the
  weights of every replica and their activations fit.
* **replicas per GPU**: a replica's call (one block of `shard_rows` docs) computes on the GPU,
  then the replica waits for its vectors, builds its output and takes the next block: host
  work of HOST_S per call when the GPU has nothing of this replica to compute. With one
  replica the GPU idles `host / (gpu + host)` of the time; n replicas overlap one's host work
  with another's GPU work. The rule takes the fewest replicas that leave the GPU idle under 10%
  of the time, `ceil(0.9 (gpu_s + HOST_S) / gpu_s)` (`gpu_s`: a call's FLOPs over
  `peak x MFU`), at most MAX_REPLICAS_PER_GPU, at most what the GPU's memory holds (weights,
  activations and a CUDA context each), at most the node's CPUs per GPU less one.
* **token budget**: the largest of 8k, 16k, 32k, 64k tokens whose activations fit in a
  replica's share of the GPU's memory; more than 64k buys nothing a GPU can show (the budget
  only needs to fill the device: 64k tokens of BERT-base are ~0.9 TFLOP).
* **tokenize CPUs per GPU**: the GPU's docs/s (all its replicas) times the data path's
  CPU-seconds per doc (read, text, tokenize, write), rounded up, plus one.

HOST_S, MFU and the data path's rate are constants until the GPU check
(`benchmarks/gpu_check.py`) measures them on a GPU: its `processes`, `token_budget` and
`data_path` steps are the measurements these rules take their constants from. The data path's
rate is measured (this project's 2-core dev machine, `benchmarks/README.md`); HOST_S and MFU
are assumptions, stated here, until then.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..gpus import gpu_facts
from .shape import ModelShape

CPU_MAX_BATCH_TOKENS = 16384          # the CPU default (unchanged: the same vectors as before)
GPU_BUDGETS = (8192, 16384, 32768, 65536)
MAX_REPLICAS_PER_GPU = 4
HOST_S = 0.005                        # ASSUMED: a replica's host work per call (Ray, Arrow, sync)
MFU = 0.30                            # ASSUMED: Arctic Inference reports ~25% on H200 (BERT-base)
DATA_PATH_DOCS_PER_CPU_S = 2762.0     # MEASURED: Ray tasks, 2-vCPU EPYC, benchmarks/README.md
CONTEXT_GIB = 0.6                     # a CUDA context and the allocator's slack, per replica
MEMORY_USE = 0.8                      # of the GPU's memory the replicas may plan to fill
UNKNOWN_GPU = (100.0, 16.0)           # peak TFLOP/s and GiB assumed for an unknown GPU


@dataclass(frozen=True)
class ModelSize:
    shape: ModelShape
    param_bytes: int                  # as loaded: fp32
    max_len: int
    tokens_per_doc: float             # of the corpus, or an assumption (`TYPICAL_TOKENS`)


@dataclass(frozen=True)
class Node:
    device: str                       # cuda | cpu | mps
    cpus_per_gpu: float = 0.0
    gpu: str | None = None            # the GPU's name (Ray's accelerator type), if known
    native_bf16: bool = False


@dataclass(frozen=True)
class Defaults:
    precision: str
    max_batch_tokens: int
    replicas_per_gpu: int
    tokenize_cpus_per_gpu: float | None
    gpu_docs_per_s: float | None      # the rate the rules expect of one GPU
    why: tuple[str, ...]


def typical_tokens(max_len: int) -> float:
    """arXiv title + abstract: 176 MiniLM tokens a doc at a 256 cap on the real sample
    (175,667 / 1,000), ~230 uncapped; a model with a shorter limit reads its limit."""
    return float(min(max_len, 230))


def choose_defaults(model: ModelSize, node: Node, call_rows: int = 512) -> Defaults:
    """The defaults for `model` on `node`; `call_rows`: docs per replica call (shard_rows)."""
    if node.device != "cuda":
        return cpu_defaults(node)
    peak, memory = gpu_numbers(node.gpu)
    weights_gib = model.param_bytes / 2**30
    precision = "fp16-weights" if weights_gib > memory / 4 else "fp16"
    held_gib = weights_gib / 2 if precision == "fp16-weights" else weights_gib
    budget = token_budget(model, memory, held_gib)
    gpu_s = call_rows * model.shape.flops_per_doc(model.tokens_per_doc) / (peak * 1e12 * MFU)
    wanted = max(1, math.ceil(0.9 * (gpu_s + HOST_S) / max(gpu_s, 1e-12)))
    by_memory = max(1, int(memory * MEMORY_USE // (held_gib + CONTEXT_GIB
                                                    + activation_gib(model, budget))))
    by_cpus = max(1, int(node.cpus_per_gpu) - 1) if node.cpus_per_gpu else MAX_REPLICAS_PER_GPU
    replicas = min(wanted, MAX_REPLICAS_PER_GPU, by_memory, by_cpus)
    docs_per_s = peak * 1e12 * MFU / model.shape.flops_per_doc(model.tokens_per_doc)
    cpus = math.ceil(docs_per_s / DATA_PATH_DOCS_PER_CPU_S) + 1
    why = (f"{precision}: fp32 weights {weights_gib:.2f} GiB of {memory:g} GiB",
           f"{budget:,} tokens: activations {activation_gib(model, budget):.2f} GiB a replica",
           f"{replicas} replica(s) per GPU: a call of {call_rows} docs computes in "
           f"~{gpu_s * 1e3:.1f} ms "
           f"at {MFU:.0%} of {peak:g} TFLOP/s against ~{HOST_S * 1e3:g} ms of host work "
           f"(wanted {wanted}; memory allows {by_memory}, CPUs {by_cpus})",
           f"{cpus} CPUs per GPU: ~{docs_per_s:,.0f} docs/s at {model.tokens_per_doc:.0f} tokens "
           f"a doc, {DATA_PATH_DOCS_PER_CPU_S:,.0f} docs per CPU-second of data path")
    return Defaults(precision, budget, replicas, float(cpus), docs_per_s, why)


def cpu_defaults(node: Node) -> Defaults:
    """CPUs (and MPS): the defaults they always had, whatever the model."""
    precision = "bf16" if node.native_bf16 else "fp32"
    if node.device == "mps":
        precision = "fp16"
    return Defaults(precision, CPU_MAX_BATCH_TOKENS, 1, None, None,
                    (f"{node.device}: {precision}, {CPU_MAX_BATCH_TOKENS:,} tokens (the CPU "
                     f"defaults)",))


def gpu_numbers(name: str | None) -> tuple[float, float]:
    facts = gpu_facts(name)
    return (facts.peak_tflops, facts.memory_gib) if facts else UNKNOWN_GPU


def activation_gib(model: ModelSize, tokens: int) -> float:
    """Peak activations of one layer in fp16 over `tokens` tokens: the hidden states in and
    out, Q, K, V, the attention output and the feed-forward's inner layer (2 bytes each), and
    eager attention's scores (heads x length per token); a generous bound for SDPA."""
    s = model.shape
    per_token = 2 * (8 * s.hidden + 2 * s.intermediate + s.heads * model.max_len)
    return tokens * per_token / 2**30


def token_budget(model: ModelSize, memory_gib: float, weights_gib: float) -> int:
    room = memory_gib * MEMORY_USE / 2 - weights_gib - CONTEXT_GIB   # two replicas' worth
    fitting = [b for b in GPU_BUDGETS if activation_gib(model, b) <= room]
    return max(fitting) if fitting else max(model.max_len, GPU_BUDGETS[0] // 2)


def gpus_per_replica(defaults: Defaults) -> float:
    return 1.0 / defaults.replicas_per_gpu
