"""`ray-embed status DIR`: what a run directory holds, without touching it."""
from __future__ import annotations

from pathlib import Path

from ..config import absolute_inputs, build_config
from .layout import H5
from .rundir import RunDir
from .shards import rows_in_name


def run_status(location: str | Path, config_path: str | None = None) -> dict:
    """What the run holds; `config_path`: a YAML config (its inputs default to the run's), and
    whether the run would resume with it."""
    run_dir = RunDir.at(location)
    job = run_dir.load_job()
    facts = job.facts()
    shards = run_dir.shards.names()
    report = run_dir.load_report()
    status = {
        "directory": run_dir.url, "model": facts["model"], "config_hash": facts["config hash"],
        "device": facts["device"], "precision": facts["precision"],
        "prompts": {"document": facts["document prompt"], "query": facts["query prompt"]},
        "shards": len(shards), "rows_done": sum(rows_in_name(name) for name in shards),
        "corrupt_shards": run_dir.shards.corrupt_count(),
        "rejected_by_reason": run_dir.rejects.counts(),
        "finalized": run_dir.results.has(H5), "limit": facts["limit"],
        "last_docs_per_s": report.get("docs_per_s"), "config_matches": None,
    }
    if config_path:
        cfg = absolute_inputs(build_config(config_path, {}, {"inputs": job.spec.inputs}))
        status["config_matches"] = cfg.config_hash() == job.config_hash
    return status


def format_status(s: dict) -> str:
    rejected = sum(s["rejected_by_reason"].values())
    by_reason = ", ".join(f"{r}: {n}" for r, n in s["rejected_by_reason"].items())
    lines = [
        f"run directory  {s['directory']}",
        f"model          {s['model']} (config {s['config_hash']}; {s['precision']} on "
        f"{s['device']})",
        f"prompts        document {s['prompts']['document']}; query {s['prompts']['query']}",
        f"rows done      {s['rows_done']:,} in {s['shards']:,} shards"
        + (f" (limit {s['limit']:,})" if s["limit"] else ""),
        f"rejected       {rejected:,}" + (f" ({by_reason})" if rejected else ""),
        f"finalized      {'yes: embeddings.h5' if s['finalized'] else 'no'}",
    ]
    if s["corrupt_shards"]:
        lines.append(f"corrupt        {s['corrupt_shards']} shard(s) set aside; "
                     f"re-run to recompute")
    if s["last_docs_per_s"]:
        lines.append(f"last rate      {s['last_docs_per_s']:,.1f} docs/s")
    if s["config_matches"] is not None:
        config = "matches" if s["config_matches"] else "DIFFERS: the run would be refused"
        lines.append(f"config         {config}")
    return "\n".join(lines)
