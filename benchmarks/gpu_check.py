"""The GPU check: everything the project needs to learn from a GPU, in one command.

    python3 benchmarks/gpu_check.py --carry .gpu_carry --out DIR [--budget-s 420]
    python3 benchmarks/gpu_check.py --dry-run --out DIR      # tiny sizes, on CPU (a test runs it)

Drives the replica's own encoder in-process (no Ray), on the real sample's texts at their real
lengths, with the models of `gpucheck/models.py`, and measures in order of importance:

  environment   GPU, versions, the fp16 / bf16 matmul ceiling measured here
  cpu_vs_gpu    MiniLM fp32: the replica on the GPU against the same code on the CPU
  speed:MODEL   docs/s, tokens/s, MFU, peak memory, min cosine vs fp32 for fp32, fp16 autocast,
                fp16 weights, bf16 autocast, bf16 weights (MiniLM, BERT-base, RoBERTa-large,
                a Qwen3-Embedding-0.6B-shaped decoder)
  st_fp16       sentence-transformers' fp16 `encode` on the same texts (the baseline)
  adapter       BERT-base + a seq_bn adapter (SPECTER2) under the carried transformers 4 stack
  token_budget  fp16 at 4k-262k tokens per micro-batch
  feeder        the pinned double-buffered feeder on and off
  attention     SDPA against eager attention
  processes     1, 2, 4 MiniLM replicas sharing the GPU (fractional GPUs on a cluster)
  data_path     CPU-seconds per 1,000 docs of read + text + tokenize + shard: CPUs per GPU
  oom_backoff   a 1M-token budget under a 2 GiB cap: rows kept, budget halved
  cuda_graphs   MiniLM on shape buckets, eager against replayed CUDA graphs
  compile       torch.compile (dynamic shapes), its compile time apart

Each measurement is skipped when the time left (`--budget-s`) is under its estimate; a failing
one is recorded and the rest go on. The results file (`gpu_check.json` in --out) is rewritten
after every measurement, so a run cut short leaves what it measured; a table ends the output.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))          # tiny_models: the adapter's maker
SAMPLE = ROOT / "tests" / "data" / "arxiv-metadata-sample-1000.jsonl"

# (name, function, estimated seconds on an H200); dry runs ignore the estimates
PLAN = (
    ("environment", "environment", 10), ("prepare", "prepare", 60),
    ("cpu_vs_gpu", "cpu_vs_gpu", 20), ("speed:minilm", "speed", 20),
    ("speed:bert-base", "speed", 25), ("speed:roberta-large", "speed", 35),
    ("speed:qwen3-0.6b", "speed", 40),
    ("st_fp16", "st_fp16", 25), ("adapter", "adapter", 75), ("token_budget", "token_budgets", 45),
    ("feeder", "feeder", 15), ("attention", "attention", 25), ("processes", "processes", 60),
    ("data_path", "data_path", 20), ("oom_backoff", "oom_backoff", 15),
    ("cuda_graphs", "cuda_graphs", 20), ("compile", "compiled", 90),
)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "benchmarks/results",
                        help="folder for gpu_check.json (default: $OUT, else benchmarks/results)")
    parser.add_argument("--carry", type=Path, default=None,
                        help="the folder benchmarks/gpu_carry.sh prepared (MiniLM in fp16); "
                             "default: the installed model")
    parser.add_argument("--adapter-site", type=Path, default=None,
                        help="site folder with transformers 4 + adapters for the adapter child")
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="stop starting measurements past this (default 420)")
    parser.add_argument("--dry-run", action="store_true", help="tiny models, a few docs, CPU")
    parser.add_argument("--only", nargs="*", default=None, help="run only these steps")
    parser.add_argument("--forbid-imports", nargs="*", default=["ray", "adapters"],
                        metavar="MODULE", help="refuse to import these here (default: ray "
                        "and adapters, which the GPU machine lacks; the adapter child, a "
                        "process of its own, is exempt from adapters)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-spec", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)




def quiet() -> None:
    """No progress bars or load reports from the libraries (transformers 5 draws one per
    model load): the output is the check's own."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


class ForbiddenImports:
    """A meta-path finder that refuses some top-level packages: the check proves, on any
    machine, that the replica's code path needs neither Ray nor `adapters`."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"{name} is not imported by the GPU check (--forbid-imports)")
        return None


def main(argv=None) -> int:
    args = parse(argv)
    quiet()
    forbidden = set(args.forbid_imports) - ({"adapters"} if args.child == "adapter" else set())
    sys.meta_path.insert(0, ForbiddenImports(forbidden))
    if args.child:
        from gpucheck.children import child_main

        return child_main(args.child, args.child_spec)
    import torch
    from gpucheck import models, steps, system_steps
    from gpucheck.record import Results, run_step, table

    device = "cuda" if torch.cuda.is_available() and not args.dry_run else "cpu"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out / ("gpu_check-dry-run.json" if args.dry_run else "gpu_check.json"),
                      {"dry_run": args.dry_run, "device": device, "budget_s": args.budget_s})
    functions = {**{name: getattr(steps, name) for name in
                    ("environment", "prepare", "cpu_vs_gpu", "st_fp16", "token_budgets",
                     "feeder", "attention", "compiled")},
                 **{name: getattr(system_steps, name) for name in
                    ("adapter", "processes", "data_path", "oom_backoff", "cuda_graphs")}}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        check = steps.Check(results, device, args.dry_run, Path(scratch), SAMPLE,
                            (args.carry / "minilm") if args.carry else None, args.adapter_site,
                            min_s=0.0 if args.dry_run else 1.0,
                            docs=16 if args.dry_run else None,
                            specs=models.TINY if args.dry_run else models.FULL)
        deadline = float("inf") if args.dry_run else args.budget_s
        for name, function, estimate in PLAN:
            if args.only is not None and name not in args.only and name not in (
                    "environment", "prepare"):
                continue
            if function == "speed":
                key = name.split(":", 1)[1]

                def fn(key=key):
                    return steps.speed(check, key)
            else:
                def fn(f=functions[function]):
                    return f(check)
            run_step(results, name, fn, estimate, deadline)
    results.note("imported_forbidden", sorted(
        m for m in sys.modules if m.split(".")[0] in set(args.forbid_imports)))
    print(table(results.data), flush=True)
    print(f"results: {results.path}")
    failed = [k for k, v in results.data["steps"].items() if v["status"].startswith("failed")]
    return 1 if failed and args.dry_run else 0


if __name__ == "__main__":
    sys.exit(main())
