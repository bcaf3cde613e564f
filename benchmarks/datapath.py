"""Can the data path (read -> text -> tokenize -> encode -> shard) keep up with its tokenizer?

    .venv/bin/python benchmarks/datapath.py [--rows 20000] [--json]

In one process, on the same texts: (a) the model's fast tokenizer alone (batches of 256,
threads = CPU cores), (b) the whole pipeline (`ray_job.pipeline.run`) with a tiny 2-layer BERT
(hidden 32), so that the model costs next to nothing and what is measured is the data path;
its steady-state docs/s counts the shards after the first one (start-up excluded, reported
apart), (c) the summed task time per Ray Data operator, (d) docs/s per CPU core. The corpus is
the real arXiv sample repeated with new ids; the text is `{abstract}`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "arxiv-metadata-sample-1000.jsonl"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

TEMPLATE = "{abstract}"
BATCH = 256


def write_corpus(rows: int, path: Path, sample: Path = SAMPLE) -> Path:
    """`rows` arXiv records: the sample repeated, each copy with new ids."""
    records = [json.loads(line) for line in open(sample)]
    with open(path, "w") as fh:
        for n in range(rows):
            r = records[n % len(records)]
            fh.write(json.dumps({**r, "id": f"{r['id']}-{n // len(records)}"}) + "\n")
    return path


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def tokenizer_alone(model: Path, corpus: Path, threads: int) -> dict:
    """The model's fast tokenizer on the pipeline's own texts (rendered by its template)."""
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    from ray_job.config import JobConfig
    from ray_job.encode.model.facts import describe
    from ray_job.encode.tokenize import load_tokenizer
    from ray_job.read.text import TextTemplate

    info = describe(JobConfig.of(model=str(model), text=TEMPLATE).spec, str(model))
    template = TextTemplate(TEMPLATE, info.sep_token)
    texts = [template.render(json.loads(line)) for line in open(corpus)]
    tok = load_tokenizer(info.tokenizer_source)
    tok(texts[:BATCH], truncation=True, max_length=info.max_seq_length)     # warm
    start, cpu_start = time.perf_counter(), time.process_time()
    tokens = 0
    for i in range(0, len(texts), BATCH):
        out = tok(texts[i:i + BATCH], truncation=True, max_length=info.max_seq_length,
                  return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        tokens += sum(map(len, out))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"docs": len(texts), "seconds": round(seconds, 3), "cpu_s": round(cpu, 3),
            "docs_per_s": round(len(texts) / seconds, 1),
            "docs_per_cpu_s": round(len(texts) / cpu, 1), "tokens": tokens,
            "max_length": info.max_seq_length, "tokenizer_source": info.tokenizer_source}


def functions_alone(corpus: Path, tok: dict) -> dict:
    """The pipeline's own read and tokenize functions on the whole corpus in this process, one
    read unit per 2,000 rows as a run would cut it, without Ray: what the stage costs."""
    from ray_job.encode.tokenize import texts_encoder, tokenize_rows, tokenizer_recipe
    from ray_job.read.inputs import ReadUnit
    from ray_job.read.sources import rows_from_unit
    from ray_job.read.text import TextTemplate

    encode = texts_encoder(tokenizer_recipe(tok["tokenizer_source"], tok["max_length"]))
    template = TextTemplate(TEMPLATE, "[SEP]")
    size = corpus.stat().st_size
    bounds = list(range(0, size, max(1, size // max(1, tok["docs"] // 2000))))[1:]
    units = [ReadUnit(0, str(corpus), "jsonl", None, a, b)
             for a, b in zip([0] + bounds, bounds + [None], strict=True)]
    start, cpu_start = time.perf_counter(), time.process_time()
    rows = 0
    for unit in units:
        table = rows_from_unit(unit, template, "id").table
        out, _ = tokenize_rows(encode, table)
        rows += out.num_rows
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"docs": rows, "seconds": round(seconds, 3), "cpu_s": round(cpu, 3),
            "docs_per_s": round(rows / seconds, 1), "docs_per_cpu_s": round(rows / cpu, 1)}


def pipeline(model: Path, corpus: Path, out: Path) -> dict:
    from ray_job.config import JobConfig
    from ray_job.pipeline import run

    started = time.perf_counter()
    report = run(JobConfig.of(inputs=(str(corpus),), output=str(out), model=str(model),
                              text=TEMPLATE, precision="fp32", fresh=True))
    return {**report, "command_s": round(time.perf_counter() - started, 3)}


def measure(rows: int, scratch: Path) -> dict:
    from tiny_models import tiny_bert

    cores = os.cpu_count() or 1
    corpus = write_corpus(rows, scratch / "arxiv.jsonl")
    model = tiny_bert(scratch / "tiny-bert")
    tok = tokenizer_alone(model, corpus, cores)
    funcs = functions_alone(corpus, tok)
    report = pipeline(model, corpus, scratch / "out")
    pipe = report.get("pipeline") or {}
    steady = pipe.get("steady_docs_per_s")
    return {
        "machine": {"cpu": cpu_model(), "cores": cores, "python": platform.python_version()},
        "rows": rows, "template": TEMPLATE,
        "tokenizer": {**tok, "threads": cores, "batch": BATCH,
                      "docs_per_s_per_core": round(tok["docs_per_s"] / cores, 1)},
        "functions": funcs,
        "pipeline": {
            "rows_embedded": report["rows_embedded"], "rows_rejected": report["rows_rejected"],
            "command_s": report["command_s"], "encode_wall_s": report["encode_wall_s"],
            "whole_run_docs_per_s": report["docs_per_s"],
            "startup_s": pipe.get("startup_s"), "steady_docs_per_s": steady,
            "steady_rows": pipe.get("steady_rows"), "ray_cpus": pipe.get("cpus"),
            "steady_docs_per_s_per_cpu": pipe.get("steady_docs_per_s_per_cpu"),
            "data_path_cpu_s": pipe.get("data_path_cpu_s"),
            "data_path_docs_per_cpu_s": pipe.get("data_path_docs_per_cpu_s"),
            "operators": pipe.get("operators", [])},
        "pipeline_over_tokenizer": round(steady / tok["docs_per_s"], 3) if steady else None,
        "data_path_over_tokenizer_per_cpu_s": (
            round(pipe["data_path_docs_per_cpu_s"] / tok["docs_per_cpu_s"], 3)
            if pipe.get("data_path_docs_per_cpu_s") else None),
    }


def format_table(result: dict) -> str:
    tok, funcs, pipe = result["tokenizer"], result["functions"], result["pipeline"]
    lines = [f"{result['rows']:,} rows, text {result['template']}, {result['machine']['cpu']}, "
             f"{result['machine']['cores']} cores",
             "", "| stage | docs/s (wall) | docs/s per core | docs per CPU-second |",
             "|---|---:|---:|---:|",
             f"| tokenizer alone (batch {tok['batch']}, {tok['threads']} threads) | "
             f"{tok['docs_per_s']:,.0f} | {tok['docs_per_s_per_core']:,.0f} | "
             f"{tok['docs_per_cpu_s']:,.0f} |",
             f"| read + text + tokenize functions, in-process | {funcs['docs_per_s']:,.0f} | | "
             f"{funcs['docs_per_cpu_s']:,.0f} |",
             f"| pipeline data path (Ray tasks: read, text, tokenize, write) | | | "
             f"{pipe['data_path_docs_per_cpu_s'] or 0:,.0f} |",
             f"| pipeline end to end, steady state (tiny model) | "
             f"{pipe['steady_docs_per_s'] or 0:,.0f} | "
             f"{pipe['steady_docs_per_s_per_cpu'] or 0:,.0f} | |",
             f"| pipeline end to end, whole encode phase | "
             f"{pipe['whole_run_docs_per_s'] or 0:,.0f} | | |",
             "", f"data path / tokenizer (per CPU-second): "
             f"{result['data_path_over_tokenizer_per_cpu_s']}; end to end / tokenizer (wall): "
             f"{result['pipeline_over_tokenizer']}; start-up "
             f"{pipe['startup_s']} s to the first shard; command {pipe['command_s']} s; "
             f"{pipe['rows_embedded']:,} embedded, {pipe['rows_rejected']} rejected",
             "", "| Ray Data operator | task wall s | task CPU s | rows out | span s |",
             "|---|---:|---:|---:|---:|"]
    for op in pipe["operators"]:
        lines.append(f"| {op['operator']} | {op['wall_s']} | {op['cpu_s']} | "
                     f"{op['rows'] if op['rows'] is not None else ''} | {op['span_s']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--json", action="store_true", help="print JSON, not a table")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="datapath-") as scratch:
        result = measure(args.rows, Path(scratch))
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
