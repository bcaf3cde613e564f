"""Wire the stages for one run: plan on the driver, stream through Ray, finalize, report."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import JobConfig, absolute_inputs
from .demo import write_demo_corpus
from .encoder import Encoder
from .errors import UserError
from .exports import run_exports
from .finalize import Storage, finalize
from .incremental import incremental_counts, load_previous, previous_h5
from .inputs import SqlSpec, auto_block_bytes, plan_units, resolve_inputs
from .models import ModelInfo, load_model, resolve_model_source
from .precision import pick_device, pick_precision
from .publish import ShardPublisher, upload
from .progress import Progress, estimate_total_rows, rows_done
from .rejects import count_by_reason
from .report import build_report, package_versions
from .resources import ResourcePlan, plan_resources
from .rundir import RunDir, now_iso, write_json
from .shards import ShardSink, done_keys, quarantine_unreadable
from .sources import units_dataset, units_to_rows
from .text import TextTemplate
from .tokenize import tokenize_batch

log = logging.getLogger("ray_job")


def with_resolved_inputs(cfg: JobConfig) -> JobConfig:
    """Absolute input paths; the built-in demo corpus when no input is given."""
    if cfg.inputs:
        return absolute_inputs(cfg)
    demo = Path(cfg.output).resolve() / "demo" / f"arxiv-demo-{cfg.demo_docs}.jsonl"
    write_demo_corpus(demo, cfg.demo_docs)
    return dataclasses.replace(cfg, inputs=(str(demo),))


def describe_model(cfg: JobConfig, source: str) -> ModelInfo:
    """Load the model once on the driver's CPU to learn its tokenizer, length limit and dim."""
    return load_model(cfg, device="cpu", source=source).info


def make_template(cfg: JobConfig, info: ModelInfo) -> TextTemplate:
    template = TextTemplate(cfg.text, info.sep_token, cfg.clean_whitespace, cfg.on_missing_field)
    try:
        template.fields
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return template


@contextlib.contextmanager
def ray_session(cfg: JobConfig):
    """Connect to `cfg.address`, or start an embedded local Ray; quiet unless verbose."""
    import ray
    from ray.data import DataContext

    started = False
    if not cfg.verbose:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        # "local" always starts a new embedded Ray, never attaching to another one by accident
        ray.init(address=cfg.address or "local", include_dashboard=False, log_to_driver=cfg.verbose,
                 logging_level=logging.INFO if cfg.verbose else logging.ERROR)
        started = True
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = cfg.verbose
    ctx.print_on_execution_start = cfg.verbose
    if not cfg.verbose:
        ctx.issue_detectors_config.detectors = []
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def cluster_device(cfg: JobConfig, cluster: dict) -> str:
    if cfg.device != "auto":
        return cfg.device
    return "cuda" if cluster.get("GPU", 0) > 0 else pick_device("auto")


def build_dataset(units, cfg: JobConfig, info: ModelInfo, template: TextTemplate,
                  run_dir: RunDir, plan: ResourcePlan, done_ref, previous_ref=None):
    from ray.data import ActorPoolStrategy

    ds = units_dataset(units)
    ds = ds.map_batches(units_to_rows, batch_size=1, batch_format="pyarrow",
                        num_cpus=plan.task_cpus,
                        fn_kwargs={"template": asdict(template), "id_field": cfg.id_field,
                                   "rejects_dir": str(run_dir.rejects), "done_keys": done_ref,
                                   "previous": previous_ref, "reuse_dir": str(run_dir.reuse)})
    ds = ds.map_batches(tokenize_batch, batch_size=None, batch_format="pyarrow",
                        num_cpus=plan.task_cpus,
                        fn_kwargs={"tokenizer_source": info.tokenizer_source,
                                   "max_length": info.max_seq_length,
                                   "trust_remote_code": cfg.trust_remote_code})
    return ds.map_batches(
        Encoder, batch_size=cfg.shard_rows, batch_format="pyarrow",
        # two batches in flight per replica: one computing, the next already delivered to it
        compute=ActorPoolStrategy(min_size=plan.min_replicas, max_size=plan.replicas,
                                  max_tasks_in_flight_per_actor=2),
        num_cpus=plan.actor_cpus, num_gpus=plan.actor_gpus or None,
        # host memory a replica needs; reserving it also keeps Ray from fusing the CPU
        # tokenize tasks into the encoder actors (fusion needs equal remote args)
        memory=replica_memory_bytes(info),
        fn_constructor_kwargs={"config": cfg.to_dict(), "model_source": info.source,
                               "threads": plan.threads})


def replica_memory_bytes(info: ModelInfo) -> int:
    """Host memory of one replica: measured ~840 MiB for MiniLM (90 MB of weights) on CPU."""
    return 4 * info.param_bytes + 768 * 2**20


def compat_attrs(cfg: JobConfig, info: ModelInfo, precision: str) -> dict:
    """What an earlier embeddings.h5 must share with this run for its vectors to be reused."""
    return {"model": info.name, "adapter": cfg.adapter or "", "backend": info.backend,
            "pooling": info.pooling, "normalized": bool(info.normalized), "precision": precision,
            "text_template": cfg.text, "max_seq_length": info.max_seq_length}


def job_record(cfg: JobConfig, info: ModelInfo) -> dict:
    return {"config": cfg.to_dict(), "config_hash": cfg.config_hash(), "model": info.to_dict(),
            "versions": package_versions(), "created": now_iso()}


def h5_attributes(job: dict, precision: str) -> dict:
    cfg, model = job["config"], job["model"]
    return {"model": model["name"], "adapter": cfg.get("adapter") or "",
            "backend": model["backend"], "pooling": model["pooling"],
            "normalized": bool(model["normalized"]), "precision": precision,
            "text_template": cfg["text"], "max_seq_length": model["max_seq_length"],
            "config_hash": job["config_hash"], "versions": job["versions"],
            "url_template": cfg.get("url_template") or ""}


@dataclass
class RunStats:
    """What the encode phase of one run did (for report.json)."""
    started: float
    embedded_now: int = 0
    encode_s: float = 0.0
    resumed: bool = False
    device: str = "n/a"
    replicas: int = 0


def run(cfg: JobConfig) -> dict:
    """Run the whole job; returns the report (also written to OUT/report.json)."""
    stats = RunStats(started=time.monotonic())
    cfg = with_resolved_inputs(cfg)
    files = resolve_inputs(cfg.inputs)
    info = describe_model(cfg, resolve_model_source(cfg.model))
    template = make_template(cfg, info)
    run_dir = RunDir(Path(cfg.output).resolve())
    stats.resumed = run_dir.prepare(cfg, job_record(cfg, info))
    with ray_session(cfg) as ray:
        precision = encode_all(ray, cfg, files, info, template, run_dir, stats)
    report = finalize_run(run_dir, precision, stats)
    if cfg.upload:
        published = upload(run_dir.root, cfg.upload)
        report["upload"] = {"destination": cfg.upload, "uploaded": published.uploaded,
                            "unchanged": published.unchanged}
    return report


def encode_all(ray, cfg: JobConfig, files, info: ModelInfo, template: TextTemplate,
               run_dir: RunDir, stats: RunStats) -> str:
    """Stream every row not yet in a shard through the cluster; returns the precision used."""
    cluster = ray.cluster_resources()
    stats.device = device = cluster_device(cfg, cluster)
    plan = plan_resources(cluster, device, cfg.replicas, cfg.gpus_per_replica,
                          cfg.cpus_per_replica, cfg.threads_per_replica)
    stats.replicas = plan.replicas
    precision = pick_precision(cfg.precision, device)
    previous = (load_previous(cfg.previous, compat_attrs(cfg, info, precision))
                if cfg.previous else None)
    units = plan_units(files, cfg.block_bytes or auto_block_bytes(files, plan.replicas * 4),
                       cfg.limit, SqlSpec(cfg.id_field, cfg.table, cfg.query))
    for name in quarantine_unreadable(run_dir.shards):
        print(f"ray-embed: shard {name} is unreadable; moved to shards/corrupt/, its rows "
              f"will be recomputed", file=sys.stderr)
    before = rows_done(run_dir.shards)
    encode_started = time.monotonic()
    if units:
        done_ref = ray.put(done_keys(run_dir.shards))
        previous_ref = ray.put(previous) if previous else None
        ds = build_dataset(units, dataclasses.replace(cfg, device=device), info, template,
                           run_dir, plan, done_ref, previous_ref)
        publisher = (ShardPublisher(run_dir.shards, cfg.upload, cfg.upload_every)
                     if cfg.upload_every else contextlib.nullcontext())
        with Progress(run_dir.shards, estimate_total_rows(units, cfg.limit)), publisher:
            ds.write_datasink(ShardSink(str(run_dir.shards)),
                              ray_remote_args={"num_cpus": plan.task_cpus})
    stats.encode_s = time.monotonic() - encode_started
    stats.embedded_now = rows_done(run_dir.shards) - before
    return precision


def finalize_run(run_dir: RunDir, precision: str | None = None,
                 stats: RunStats | None = None) -> dict:
    """Merge the shards of `run_dir` into embeddings.h5 and write report.json."""
    job = run_dir.load_job()
    cfg = job["config"]
    stats = stats or RunStats(started=time.monotonic())
    last = json.loads(run_dir.report_json.read_text()) if run_dir.report_json.is_file() else {}
    precision = precision or last.get("precision") or cfg["precision"]
    url_template = JobConfig.from_dict(cfg).resolved_url_template
    previous = previous_h5(cfg["previous"]) if cfg.get("previous") else None
    storage = Storage(cfg.get("storage_dtype", "float32"), cfg.get("compression"))
    result = finalize(run_dir.root, h5_attributes(job, precision), url_template,
                      bool(job["model"]["normalized"]), str(previous) if previous else None,
                      storage)
    report = build_report(
        result, count_by_reason(run_dir.rejects), stats.embedded_now,
        time.monotonic() - stats.started, stats.encode_s, stats.resumed, stats.device,
        precision, stats.replicas, job["model"].get("param_bytes", 0))
    if previous:
        report["incremental"] = incremental_counts(run_dir.reuse, previous)
    report["output"] = str(run_dir.h5)
    report["exports"] = run_exports(run_dir.root, tuple(cfg.get("exports") or ()))
    write_json(run_dir.report_json, report)
    return report
