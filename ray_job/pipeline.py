"""Wire the stages for one run: plan on the driver, stream through Ray, finalize, report."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from dataclasses import asdict, dataclass

from .config import JobConfig, absolute_inputs
from .read.demo import write_demo_corpus
from .encode.encoder import Encoder
from .errors import UserError
from .finalize.exports import run_exports
from .finalize.merge import Storage, finalize
from .read.previous import incremental_counts, load_previous, previous_h5
from .rundir.mirror import pull_work, push_results
from .read.inputs import SqlSpec, auto_block_bytes, plan_units, resolve_inputs
from .encode.models import ModelInfo, load_model, resolve_model_source
from .encode.precision import pick_device, pick_precision
from .publish.upload import ShardPublisher, upload
from .rundir.progress import Progress, estimate_total_rows, rows_done
from .rundir.rejects import count_by_reason
from .finalize.report import build_report, package_versions
from .encode.resources import ResourcePlan, plan_resources
from .rundir.rundir import RunDir, now_iso, write_json
from .rundir.shards import CorruptShard, ShardSink, done_keys, quarantine_in, quarantine_unreadable
from .rundir.store import Store
from .ray_auth import auth_hint
from .search.index import build_index
from .stderr_filter import drop_benign_lines
from .read.sources import units_dataset, units_to_rows
from .read.text import TextTemplate
from .encode.tokenize import tokenize_batch

log = logging.getLogger("ray_job")


def with_resolved_inputs(cfg: JobConfig, run_dir: RunDir) -> JobConfig:
    """Absolute input paths; the built-in demo corpus when no input is given (written into
    the run directory, so that on a cluster every node reads it from the run's store)."""
    if cfg.inputs:
        return absolute_inputs(cfg)
    name = f"demo/arxiv-demo-{cfg.demo_docs}.jsonl"
    write_demo_corpus(run_dir.root / name, cfg.demo_docs)
    if run_dir.is_remote:
        run_dir.store.put(run_dir.root / name, name)
    return dataclasses.replace(cfg, inputs=(f"{run_dir.store.url}/{name}",))


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
        try:
            ray.init(address=cfg.address or "local", include_dashboard=False,
                     log_to_driver=cfg.verbose,
                     logging_level=logging.INFO if cfg.verbose else logging.ERROR)
        except Exception as exc:
            hint = auth_hint(exc, cfg.address)
            if hint is None:
                raise
            raise hint from None
        started = True
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = cfg.verbose
    ctx.print_on_execution_start = cfg.verbose
    if not cfg.verbose:
        ctx.issue_detectors_config.detectors = []
    with drop_benign_lines(enabled=not cfg.verbose):
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
                                   "rejects_url": run_dir.part("rejects").url, "done_keys": done_ref,
                                   "previous": previous_ref, "reuse_url": run_dir.part("reuse").url})
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
    run_dir = RunDir.at(cfg.output)
    cfg = with_resolved_inputs(cfg, run_dir)
    files = resolve_inputs(cfg.inputs)
    info = describe_model(cfg, resolve_model_source(cfg.model))
    template = make_template(cfg, info)
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
    pull_work(run_dir)
    for name in quarantine_unreadable(run_dir.shards):
        quarantine_in(run_dir.part("shards"), name)
        print(f"ray-embed: shard {name} is unreadable; moved to shards/corrupt/, its rows "
              f"will be recomputed", file=sys.stderr)
    shards = run_dir.part("shards")
    before = rows_done(shards)
    encode_started = time.monotonic()
    if units:
        done_ref = ray.put(done_keys(run_dir.shards))
        previous_ref = ray.put(previous) if previous else None
        ds = build_dataset(units, dataclasses.replace(cfg, device=device), info, template,
                           run_dir, plan, done_ref, previous_ref)
        publisher = (ShardPublisher(shards, cfg.upload, cfg.upload_every)
                     if cfg.upload_every else contextlib.nullcontext())
        with Progress(shards, estimate_total_rows(units, cfg.limit)), publisher:
            ds.write_datasink(ShardSink(shards.url), ray_remote_args={"num_cpus": plan.task_cpus})
    stats.encode_s = time.monotonic() - encode_started
    stats.embedded_now = rows_done(shards) - before
    return precision


def finalize_run(run_dir: RunDir, precision: str | None = None,
                 stats: RunStats | None = None) -> dict:
    """Merge the shards of `run_dir` into embeddings.h5 and write report.json (and, for a
    run in object storage, publish them there)."""
    job = run_dir.load_job()
    cfg = job["config"]
    stats = stats or RunStats(started=time.monotonic())
    last = run_dir.load_report()
    pull_work(run_dir)
    precision = precision or last.get("precision") or cfg["precision"]
    url_template = JobConfig.from_dict(cfg).resolved_url_template
    previous = previous_h5(cfg["previous"]) if cfg.get("previous") else None
    storage = Storage(cfg.get("storage_dtype", "float32"), cfg.get("compression"))
    try:
        result = finalize(run_dir.root, h5_attributes(job, precision), url_template,
                          bool(job["model"]["normalized"]), str(previous) if previous else None,
                          storage)
    except CorruptShard as exc:
        quarantine_in(run_dir.part("shards"), exc.path.name)
        raise
    report = build_report(
        result, count_by_reason(Store.at(run_dir.rejects)), stats.embedded_now,
        time.monotonic() - stats.started, stats.encode_s, stats.resumed, stats.device,
        precision, stats.replicas, job["model"].get("param_bytes", 0))
    if previous:
        report["incremental"] = {**incremental_counts(run_dir.reuse, previous),
                                 "previous": cfg["previous"]}
    report["output"] = f"{run_dir.store.url}/embeddings.h5"
    report["exports"] = run_exports(run_dir.root, tuple(cfg.get("exports") or ()))
    write_json(run_dir.report_json, report)
    push_results(run_dir)
    if cfg.get("index"):
        build_index(run_dir)
    return report
