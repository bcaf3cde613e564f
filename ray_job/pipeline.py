"""Wire the stages for one run: plan on the driver, stream through Ray, finalize, report."""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import asdict, dataclass

from .config import JobConfig, absolute_inputs
from .encode.encoder import Encoder
from .encode.models import ModelInfo, load_model, resolve_model_source
from .encode.precision import pick_device, pick_precision
from .encode.resources import ResourcePlan, plan_resources
from .encode.tokenize import tokenize_batch
from .errors import UserError
from .finalize.exports import run_exports
from .finalize.merge import MergeSpec, Storage, finalize
from .finalize.report import build_report, now_iso, package_versions
from .publish.upload import ShardPublisher, upload
from .read.demo import write_demo_corpus
from .read.inputs import SqlSpec, auto_block_bytes, plan_units, resolve_inputs
from .read.previous import incremental_counts, load_previous, previous_h5
from .read.sources import units_dataset, units_to_rows
from .read.text import TextTemplate
from .redact import redact_config, redact_url
from .rundir.layout import DEMO, H5
from .rundir.progress import Progress, estimate_total_rows
from .rundir.rundir import RunDir
from .rundir.shards import ShardSink

log = logging.getLogger("ray_job")


def with_resolved_inputs(cfg: JobConfig, run_dir: RunDir) -> JobConfig:
    """Absolute input paths; the built-in demo corpus when no input is given (written into
    the run directory, so that on a cluster every node reads it from the run's store)."""
    if cfg.spec.inputs:
        return absolute_inputs(cfg)
    name = f"{DEMO}/arxiv-demo-{cfg.options.demo_docs}.jsonl"
    if not run_dir.has_result(name):
        with run_dir.result_writer(name) as tmp:
            write_demo_corpus(tmp, cfg.options.demo_docs)
    return cfg.replace(inputs=(run_dir.child_url(name),))


def describe_model(cfg: JobConfig, source: str) -> ModelInfo:
    """Load the model once on the driver's CPU to learn its tokenizer, length limit and dim."""
    return load_model(cfg, device="cpu", source=source).info


def make_template(cfg: JobConfig, info: ModelInfo) -> TextTemplate:
    spec = cfg.spec
    try:  # TextTemplate checks itself: plain {field}s and {sep} only
        return TextTemplate(spec.text, info.sep_token, spec.clean_whitespace,
                            spec.on_missing_field)
    except ValueError as exc:
        raise UserError(str(exc)) from None


@contextlib.contextmanager
def ray_session(cfg: JobConfig):
    """Connect to the configured Ray address, or start an embedded local Ray; quiet unless verbose."""
    import ray
    from ray.data import DataContext

    started, verbose = False, cfg.options.verbose
    if not verbose:
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        # "local" always starts a new embedded Ray, never attaching to another one by accident
        ray.init(address=cfg.options.address or "local", include_dashboard=False,
                 log_to_driver=verbose, logging_level=logging.INFO if verbose else logging.ERROR)
        started = True
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = verbose
    ctx.print_on_execution_start = verbose
    if not verbose:
        ctx.issue_detectors_config.detectors = []
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def cluster_device(cfg: JobConfig, cluster: dict) -> str:
    if cfg.options.device != "auto":
        return cfg.options.device
    return "cuda" if cluster.get("GPU", 0) > 0 else pick_device("auto")


def build_dataset(units, cfg: JobConfig, info: ModelInfo, template: TextTemplate,
                  run_dir: RunDir, plan: ResourcePlan, done_ref, previous_ref=None):
    from ray.data import ActorPoolStrategy

    ds = units_dataset(units)
    ds = ds.map_batches(units_to_rows, batch_size=1, batch_format="pyarrow",
                        num_cpus=plan.task_cpus,
                        fn_kwargs={"template": asdict(template), "id_field": cfg.spec.id_field,
                                   "run_url": run_dir.url, "done_keys": done_ref,
                                   "previous": previous_ref})
    ds = ds.map_batches(tokenize_batch, batch_size=None, batch_format="pyarrow",
                        num_cpus=plan.task_cpus,
                        fn_kwargs={"tokenizer_source": info.tokenizer_source,
                                   "max_length": info.max_seq_length,
                                   "trust_remote_code": cfg.spec.trust_remote_code,
                                   "run_url": run_dir.url})
    return ds.map_batches(
        Encoder, batch_size=cfg.options.shard_rows, batch_format="pyarrow",
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
    return {"model": info.name, "adapter": cfg.spec.adapter or "", "backend": info.backend,
            "pooling": info.pooling, "normalized": bool(info.normalized), "precision": precision,
            "text_template": cfg.spec.text, "max_seq_length": info.max_seq_length}


def job_record(cfg: JobConfig, info: ModelInfo) -> dict:
    return {"config": redact_config(cfg.to_dict()), "config_hash": cfg.config_hash(),
            "model": info.to_dict(), "versions": package_versions(), "created": now_iso()}


def h5_attributes(job: dict, precision: str) -> dict:
    spec, model = job["config"]["spec"], job["model"]
    return {"model": model["name"], "adapter": spec.get("adapter") or "",
            "backend": model["backend"], "pooling": model["pooling"],
            "normalized": bool(model["normalized"]), "precision": precision,
            "text_template": spec["text"], "max_seq_length": model["max_seq_length"],
            "config_hash": job["config_hash"], "versions": job["versions"],
            "url_template": job["config"]["options"].get("url_template") or ""}


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
    run_dir = RunDir.at(cfg.options.output)
    cfg = with_resolved_inputs(cfg, run_dir)
    files = resolve_inputs(cfg.spec.inputs)
    info = describe_model(cfg, resolve_model_source(cfg.spec.model))
    template = make_template(cfg, info)
    job = job_record(cfg, info)
    stats.resumed = run_dir.prepare(job, cfg.options.fresh)
    with ray_session(cfg) as ray:
        encode_all(ray, cfg, files, info, template, run_dir, job, stats)
    report = finalize_run(run_dir, stats)
    if cfg.options.upload:
        published = upload(run_dir.url, cfg.options.upload)
        report["upload"] = {"destination": redact_url(cfg.options.upload),
                            "uploaded": published.uploaded,
                            "unchanged": published.unchanged}
    return report


def encode_all(ray, cfg: JobConfig, files, info: ModelInfo, template: TextTemplate,
               run_dir: RunDir, job: dict, stats: RunStats) -> None:
    """Stream every row not yet in a shard through the cluster."""
    options = cfg.options
    cluster = ray.cluster_resources()
    stats.device = device = cluster_device(cfg, cluster)
    plan = plan_resources(cluster, device, options.replicas, options.gpus_per_replica,
                          options.cpus_per_replica, options.threads_per_replica)
    stats.replicas = plan.replicas
    precision = pick_precision(cfg.spec.precision, device)
    run_dir.write_job({**job, "device": device, "precision": precision})
    previous = (load_previous(options.previous, compat_attrs(cfg, info, precision))
                if options.previous else None)
    units = plan_units(files, options.block_bytes or auto_block_bytes(files, plan.replicas * 4),
                       options.limit, SqlSpec(cfg.spec.id_field, cfg.spec.table, cfg.spec.query))
    done = run_dir.done_keys(on_quarantine=lambda error: print(
        f"ray-embed: {error}", file=sys.stderr))
    before = run_dir.rows_done()
    encode_started = time.monotonic()
    if units:
        done_ref = ray.put(done)
        previous_ref = ray.put(previous) if previous else None
        ds = build_dataset(units, cfg.replace(device=device), info, template, run_dir, plan,
                           done_ref, previous_ref)
        publisher = (ShardPublisher(run_dir, options.upload, options.upload_every)
                     if options.upload_every else contextlib.nullcontext())
        with Progress(run_dir, estimate_total_rows(units, options.limit)), publisher:
            ds.write_datasink(ShardSink(run_dir.url), ray_remote_args={"num_cpus": plan.task_cpus})
    stats.encode_s = time.monotonic() - encode_started
    stats.embedded_now = run_dir.rows_done() - before


def finalize_run(run_dir: RunDir, stats: RunStats | None = None) -> dict:
    """Merge the shards of `run_dir` into embeddings.h5, run the exports and write
    report.json (last: a reader that sees it sees the rest)."""
    job = run_dir.load_job()
    spec, options = job["config"]["spec"], job["config"]["options"]
    stats = stats or RunStats(started=time.monotonic())
    precision = job.get("precision") or spec["precision"]
    previous = previous_h5(options["previous"]) if options.get("previous") else None
    url_template = JobConfig.from_dict(job["config"]).options.resolved_url_template
    merge = MergeSpec(h5_attributes(job, precision), url_template, bool(job["model"]["normalized"]),
                      str(previous) if previous else None,
                      Storage(options["storage_dtype"], options["compression"]))
    result = finalize(run_dir, merge)
    ran = result.ran_with
    report = build_report(
        result, run_dir.reject_counts(), stats.embedded_now, time.monotonic() - stats.started,
        stats.encode_s, stats.resumed, ",".join(ran["devices"]) or stats.device,
        ran["precision"] or precision, stats.replicas, job["model"].get("param_bytes", 0))
    if previous:
        report["incremental"] = {**incremental_counts(run_dir.reuse_counts(), previous),
                                 "previous": options["previous"]}
    report["output"] = run_dir.child_url(H5)
    report["exports"] = run_exports(run_dir, tuple(options.get("exports") or ()))
    run_dir.write_report(report)
    return report
