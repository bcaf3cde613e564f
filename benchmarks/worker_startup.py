"""What a worker process pays before its first batch: a tokenize task's tokenizer, a replica's
model. Each case runs in a fresh Python process, `--repeat` times; the median is printed.

    .venv/bin/python benchmarks/worker_startup.py
    .venv/bin/python benchmarks/worker_startup.py --cases recipe transformers --repeat 5 --json

Cases (the bundled model):
- recipe: a tokenize task with the driver's `TokenizerRecipe` (the Rust tokenizer as JSON);
- transformers: the same task loading the tokenizer through transformers (what a recipe
  without a Rust tokenizer does; every task did it before the recipe);
- replica: `Encoder(...)` as a replica builds it (lean imports: no scikit-learn, no SciPy);
- replica-extras: the same after transformers' model code was imported first, so it pulls in
  scikit-learn and SciPy as it does in any other process (the replica before the change).

A tokenize case counts from a process that already has Ray Data and pyarrow loaded (as a Ray
worker has) and reports the RSS it added; a replica case counts from the process's start.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datapath import cpu_model  # noqa: E402

TOKENIZE = r"""
import json, sys, time
def rss():
    return next(int(l.split()[1]) / 1024 for l in open("/proc/self/status")
                if l.startswith("VmRSS"))
import ray.data, pyarrow
from ray_job.encode import tokenize
base, start = rss(), time.perf_counter()
recipe = tokenize.TokenizerRecipe(**json.load(open(sys.argv[1])))
if sys.argv[2] == "transformers":
    recipe = tokenize.TokenizerRecipe(recipe.source, recipe.max_length)
tokenize.texts_encoder(recipe)(["a title [SEP] an abstract about attention"] * 64)
print(json.dumps({"seconds": time.perf_counter() - start, "rss_added_mib": rss() - base,
                  "imported": [m for m in ("torch", "transformers", "sklearn", "scipy")
                               if m in sys.modules]}))
"""

REPLICA = r"""
import time
start = time.perf_counter()
import json, sys
if sys.argv[2] == "replica-extras":
    import transformers.modeling_utils   # transformers' model code first: the extras come too
from ray_job.config import JobConfig
from ray_job.encode.encoder import Encoder
from ray_job.encode.model.loading import bundled_model_path
from ray_job.rundir.replica import ReplicaSpec
cfg = JobConfig.of()
Encoder(ReplicaSpec.of(cfg.spec, cfg.options, bundled_model_path(), None, "cpu", "fp32"))
print(json.dumps({"seconds": time.perf_counter() - start,
                  "imported": [m for m in ("torch", "transformers", "sklearn", "scipy")
                               if m in sys.modules]}))
"""

CASES = {"recipe": TOKENIZE, "transformers": TOKENIZE, "replica": REPLICA,
         "replica-extras": REPLICA}


def run_case(case: str, recipe_file: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CASES[case], str(recipe_file), case],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(cases: list[str], repeat: int) -> dict:
    from ray_job.encode.model.loading import bundled_model_path
    from ray_job.encode.tokenize import tokenizer_recipe

    with tempfile.TemporaryDirectory() as tmp:
        recipe_file = Path(tmp) / "recipe.json"
        recipe_file.write_text(json.dumps(asdict(tokenizer_recipe(str(bundled_model_path()),
                                                                  256))))
        results = {}
        for case in cases:
            runs = [run_case(case, recipe_file) for _ in range(repeat)]
            results[case] = {
                "seconds": round(statistics.median(r["seconds"] for r in runs), 2),
                "rss_added_mib": (round(statistics.median(r["rss_added_mib"] for r in runs))
                                  if "rss_added_mib" in runs[0] else None),
                "imported": runs[-1]["imported"], "runs": repeat}
    return {"cpu": cpu_model(), "python": platform.python_version(), "cases": results}


def format_table(result: dict) -> str:
    lines = [f"CPU: {result['cpu']}", "",
             "| case | seconds (median) | RSS added, MiB | imported of torch, transformers, "
             "sklearn, scipy |", "|---|---:|---:|---|"]
    for case, r in result["cases"].items():
        rss = "" if r["rss_added_mib"] is None else str(r["rss_added_mib"])
        lines.append(f"| {case} | {r['seconds']:.2f} | {rss} | "
                     f"{', '.join(r['imported']) or 'none'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.cases, args.repeat)
    print(json.dumps(result, indent=2) if args.json else format_table(result))


if __name__ == "__main__":
    main()
