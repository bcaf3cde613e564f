"""After the encode, on the driver: merge the shards into embeddings.h5 (finalize/), measure
the vectors (quality/), then, as the run asks, the map, the near-duplicates and the exports;
report.json last (a reader that sees it sees the rest), then the index."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from .errors import UserError
from .finalize.exports import run_exports
from .finalize.merge import MergeSpec, Storage, finalize
from .finalize.report import build_report
from .map.build import build_map, map_summary
from .quality.sample_file import write_sample
from .quality.section import quality_section
from .quality.tap import QualityTap
from .read.plan import ReadPlan, frozen_plan
from .read.previous import incremental_counts, previous_h5, verify_pin
from .read.text import text_cap_summary
from .rundir.job import JobRecord
from .rundir.layout import H5
from .rundir.rundir import RunDir
from .search.index import build_index


@dataclass
class RunStats:
    """What the encode phase of one run did (for report.json)."""
    started: float
    embedded_now: int = 0
    encode_s: float = 0.0
    resumed: bool = False
    device: str = "n/a"
    replicas: int = 0
    pipeline: dict | None = None     # start-up, steady-state rate, per-operator times
    random_text_cosine: float | None = None   # the model's, for the quality section


def run_map(run_dir: RunDir) -> dict:
    """`--map`: the map, or why there is none (a run too small for one still finishes)."""
    try:
        return map_summary(build_map(run_dir))
    except UserError as exc:
        print(f"ray-embed: no map: {exc}", file=sys.stderr)
        return {"skipped": str(exc)}


def measure_quality(run_dir: RunDir, measured, job: JobRecord, plan: ReadPlan | None,
                    baseline: float | None) -> dict:
    """report.json's quality section; the sample it judged goes to RUN/quality/."""
    section, sample = quality_section(measured, job, plan, lambda: run_dir.results.local(H5),
                                      baseline)
    write_sample(run_dir, sample, measured.sample.keys)
    return section


def finalize_run(run_dir: RunDir, stats: RunStats | None = None,
                 previous: str | None = None) -> dict:
    """Merge the shards of `run_dir` into embeddings.h5, run the exports and write
    report.json (last: a reader that sees it sees the rest). `previous`: the --previous
    location as given (job.json holds it with any credentials redacted)."""
    job = run_dir.load_job()
    options = job.options
    stats = stats or RunStats(started=time.monotonic())
    previous_at = previous or options.previous
    previous = previous_h5(previous_at) if previous_at else None
    if previous and job.previous_pin:     # a record from before pins: rows checked as copied
        verify_pin(previous, job.previous_pin, run_dir.url)
    plan = frozen_plan(run_dir)
    merge = MergeSpec(job.h5_attributes(), options.resolved_url_template, job.model.normalized,
                      str(previous) if previous else None,
                      Storage(options.storage_dtype, options.compression),
                      plan.units if plan else None)
    with run_dir.scratch() as scratch:
        tap = QualityTap(scratch, job.model.max_seq_length)
        result = finalize(run_dir, merge, tap)
        measured = tap.finish()
    ran = result.ran_with
    report = build_report(
        result, result.rejected_by_reason, stats.embedded_now, time.monotonic() - stats.started,
        stats.encode_s, stats.resumed, ",".join(ran["devices"]) or stats.device,
        ran["precision"] or job.precision, stats.replicas, job.model.param_bytes)
    if previous:
        report["incremental"] = {**incremental_counts(run_dir.reads.reuse_counts(), previous),
                                 "previous": options.previous}
    if result.reconciliation:
        report["rows_read"] = result.reconciliation["rows_seen"]
        report["reconciliation"] = result.reconciliation
    report["text_cap"] = result.text_cap or text_cap_summary(run_dir.reads.units())
    if stats.pipeline:
        report["pipeline"] = stats.pipeline
    report["output"] = run_dir.child_url(H5)
    baseline = (stats.random_text_cosine if stats.random_text_cosine is not None
                else (run_dir.load_report().get("quality") or {}).get("random_text_cosine"))
    report["quality"] = measure_quality(run_dir, measured, job, plan, baseline)
    if options.map:
        report["map"] = run_map(run_dir)                      # before the Parquet export
    dropped = None
    if options.drop_duplicates:                               # after embeddings.h5
        from .dedup.build import build_dedup, summary
        from .finalize.exports import dedup_dropped

        report["near_duplicates"] = summary(build_dedup(run_dir, options.dedup_threshold),
                                            run_dir)
        dropped = dedup_dropped(run_dir)
    report["exports"] = run_exports(run_dir, options.exports, job.export_truncate_dim,
                                    dropped)
    run_dir.write_report(report)
    if options.index:
        build_index(run_dir)
    return report
