"""Wire the stages for one run: plan on the driver, stream through Ray, finalize, report."""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass

from .config import JobConfig, absolute_inputs
from .driver_memory import DriverMemory
from .encode.encoder import Encoder, replica_config
from .encode.model_facts import describe
from .encode.model_identity import model_identity, pinned_revision
from .encode.models import ModelInfo, resolve_model_source
from .encode.precision import pick_device, pick_precision
from .encode.resources import ResourcePlan, plan_resources
from .encode.tokenize import tokenize_batch, tokenizer_recipe
from .errors import UserError
from .extras import check_run_extras
from .finalize.exports import run_exports
from .finalize.quantize import check_truncate_dim
from .finalize.merge import MergeSpec, Storage, finalize
from .finalize.report import build_report, now_iso, package_versions
from .publish.upload import ShardPublisher, upload
from .read.demo import write_demo_corpus
from .read.inputs import SqlSpec, auto_block_bytes, resolve_inputs
from .read.manifest import build_manifest
from .read.plan import ReadPlan, check_resume, resolve_plan
from .read.previous import incremental_counts, load_previous, previous_h5
from .read.resume import units_to_read
from .search.index import build_index
from .map.build import build_map, map_summary
from .read.sources import units_dataset, units_to_rows
from .read.text import TextTemplate, text_byte_cap, text_cap_summary
from .faults import faults_from_environment
from .redact import redact_config, redact_url
from .rundir.layout import DEMO, H5
from .rundir.progress import Progress, estimate_total_rows
from .rundir.rundir import RunDir
from .rundir.shards import write_shard_block
from .rundir.tally import ShardTally
from .session import ray_session
from .throughput import data_path_rate, operator_times, per_core, steady_state

log = logging.getLogger("ray_job")

# A shard write is a few milliseconds of I/O. Holding a whole CPU, it waited behind the read
# tasks for the one CPU the replicas leave free (2-CPU machine: 20k rows, the first shard
# written ~50 s after the encoder's first batch, its output held in the object store meanwhile).
WRITE_CPUS = 0


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
    """The model's tokenizer, length limit and dim, from its files: the driver never loads it."""
    return describe(cfg.spec, source)


def make_template(cfg: JobConfig, info: ModelInfo) -> TextTemplate:
    spec = cfg.spec
    try:  # TextTemplate checks itself: plain {field}s and {sep} only
        return TextTemplate(spec.text, info.sep_token, spec.clean_whitespace,
                            spec.on_missing_field, text_byte_cap(info.max_seq_length))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def cluster_device(cfg: JobConfig, cluster: dict) -> str:
    if cfg.options.device != "auto":
        return cfg.options.device
    return "cuda" if cluster.get("GPU", 0) > 0 else pick_device("auto")


def replica_request(cfg: JobConfig, cluster: dict) -> tuple[str, str]:
    """The device and precision the driver asks of every replica: resolved, never `auto`
    (each replica then settles what it runs on its node: `precision.replica_choice`)."""
    device = cluster_device(cfg, cluster)
    return device, pick_precision(cfg.spec.precision, device)


def build_dataset(units, cfg: JobConfig, ran: tuple[str, str], info: ModelInfo,
                  template: TextTemplate, run_dir: RunDir, plan: ResourcePlan, done_shards,
                  previous_ref=None, revision: str | None = None):
    """The Ray Dataset of one run; `ran`: the (device, precision) asked of every replica;
    `revision`: the Hub commit every tokenizer and replica loads; `done_shards`: per unit,
    the shards holding its rows done earlier (read/resume.py)."""
    from ray.data import ActorPoolStrategy

    ds = units_dataset(units, done_shards)
    ds = ds.map_batches(units_to_rows, batch_size=1, batch_format="pyarrow",
                        num_cpus=plan.task_cpus,
                        fn_kwargs={"template": asdict(template), "id_field": cfg.spec.id_field,
                                   "run_url": run_dir.url, "previous": previous_ref})
    ds = ds.map_batches(tokenize_batch, batch_size=None, batch_format="pyarrow",
                        num_cpus=plan.task_cpus,
                        fn_kwargs={"recipe": asdict(tokenizer_recipe(
                                       info.tokenizer_source, info.max_seq_length,
                                       cfg.spec.trust_remote_code, revision)),
                                   "run_url": run_dir.url, "threads": plan.task_cpus})
    return ds.map_batches(
        Encoder, batch_size=cfg.options.shard_rows, batch_format="pyarrow",
        # two batches in flight per replica: one computing, the next already delivered to it
        compute=ActorPoolStrategy(min_size=plan.min_replicas, max_size=plan.replicas,
                                  max_tasks_in_flight_per_actor=2),
        num_cpus=plan.actor_cpus, num_gpus=plan.actor_gpus or None,
        # host memory a replica needs; reserving it also keeps Ray from fusing the CPU
        # tokenize tasks into the encoder actors (fusion needs equal remote args)
        memory=replica_memory_bytes(info),
        fn_constructor_kwargs={"config": replica_config(cfg), "model_source": info.source,
                               "device": ran[0], "precision": ran[1],
                               "threads": plan.threads, "faults": faults_from_environment(),
                               "revision": revision, "run_url": run_dir.url})


def replica_memory_bytes(info: ModelInfo) -> int:
    """Host memory of one replica: measured ~840 MiB for MiniLM (90 MB of weights) on CPU."""
    return 4 * info.param_bytes + 768 * 2**20


def compat_attrs(cfg: JobConfig, info: ModelInfo, identity: dict, precision: str) -> dict:
    """What an earlier embeddings.h5 must share with this run for its vectors to be reused."""
    return {"model": info.name, "model_identity": json.dumps(identity, sort_keys=True),
            "adapter": cfg.spec.adapter or "", "backend": info.backend,
            "pooling": info.pooling, "normalized": bool(info.normalized), "precision": precision,
            "text_template": cfg.spec.text, "max_seq_length": info.max_seq_length}


def job_record(cfg: JobConfig, info: ModelInfo) -> dict:
    identity = model_identity(cfg.spec, info.source)
    return {"config": redact_config(cfg.to_dict()), "config_hash": cfg.config_hash(),
            "model": {**info.to_dict(), "identity": identity},
            "versions": package_versions(), "created": now_iso()}


def h5_attributes(job: dict, precision: str) -> dict:
    spec, model = job["config"]["spec"], job["model"]
    return {"model": model["name"], "adapter": spec.get("adapter") or "",
            "model_identity": json.dumps(model["identity"], sort_keys=True),
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
    pipeline: dict | None = None     # start-up, steady-state rate, per-operator times


def run(cfg: JobConfig) -> dict:
    """Run the whole job; returns the report (also written to OUT/report.json). Everything
    that can be checked is checked before the run directory is touched; its lease is then held
    until the report is written."""
    stats = RunStats(started=time.monotonic())
    run_dir = RunDir.at(cfg.options.output)
    planned = plan_job(cfg, run_dir)
    with run_dir.lease():
        report = encode_and_finalize(planned, run_dir, stats)
    if cfg.options.upload:
        published = upload(run_dir.url, cfg.options.upload)
        report["upload"] = {"destination": redact_url(cfg.options.upload),
                            "uploaded": published.uploaded,
                            "unchanged": published.unchanged}
    return report


@dataclass(frozen=True)
class PlannedJob:
    """A job checked on the driver, before anything in its run directory is touched."""
    cfg: JobConfig
    files: list
    manifest: list[dict]
    info: ModelInfo
    template: TextTemplate
    job: dict


def plan_job(cfg: JobConfig, run_dir: RunDir) -> PlannedJob:
    """Inputs found and fingerprinted, model facts read, template checked, job record made."""
    info = describe_model(cfg, resolve_model_source(cfg.spec.model))
    check_truncate_dim(cfg.options.truncate_dim, info.dim)      # before any row is encoded
    check_run_extras(cfg.options)
    template = make_template(cfg, info)
    cfg = with_resolved_inputs(cfg, run_dir)
    files = resolve_inputs(cfg.spec.inputs)
    return PlannedJob(cfg, files, build_manifest(files), info, template, job_record(cfg, info))


def encode_and_finalize(planned: PlannedJob, run_dir: RunDir, stats: RunStats) -> dict:
    cfg, job = planned.cfg, planned.job
    old_plan = None if cfg.options.fresh else frozen_plan(run_dir)

    def check(old_job: dict) -> None:
        check_same_model(old_job, job, run_dir.url)
        check_resume(old_plan, planned.manifest, cfg.options.limit, run_dir.url)

    stats.resumed = run_dir.prepare(job, cfg.options.fresh, check)
    with ray_session(cfg) as ray:
        encode_all(ray, cfg, Inputs(planned.files, planned.manifest, old_plan), planned.info,
                   planned.template, run_dir, job, stats)
    return finalize_run(run_dir, stats, cfg.options.previous)


def check_same_model(old_job: dict, job: dict, where: str) -> None:
    """A resume must run the very model the run started with (same weights or Hub commit)."""
    old, new = old_job.get("model", {}).get("identity"), job["model"]["identity"]
    if old != new:
        raise UserError(f"the model of {where} changed since it started ({old} -> {new}); use "
                        f"--fresh to start over, or a new --output")


@dataclass(frozen=True)
class Inputs:
    """The input files of a run, their manifest, and the plan frozen by an earlier driver."""
    files: list
    manifest: list[dict]
    old_plan: ReadPlan | None


def frozen_plan(run_dir: RunDir) -> ReadPlan | None:
    found = run_dir.load_plan()
    return ReadPlan.from_dict(found) if found else None


def encode_all(ray, cfg: JobConfig, inputs: Inputs, info: ModelInfo, template: TextTemplate,
               run_dir: RunDir, job: dict, stats: RunStats) -> None:
    """Stream every row not yet in a shard through the cluster."""
    options = cfg.options
    cluster = ray.cluster_resources()
    device, precision = replica_request(cfg, cluster)
    stats.device = device
    plan = plan_resources(cluster, device, options.replicas, options.gpus_per_replica,
                          options.cpus_per_replica, options.threads_per_replica)
    stats.replicas = plan.replicas
    run_dir.write_job({**job, "device": device, "precision": precision})
    previous = (load_previous(options.previous, compat_attrs(cfg, info, job["model"]["identity"], precision))
                if options.previous else None)
    block_bytes = options.block_bytes or auto_block_bytes(inputs.files, plan.replicas * 4)
    read_plan = resolve_plan(inputs.old_plan, inputs.files, inputs.manifest, block_bytes,
                             options.limit, SqlSpec(cfg.spec.id_field, cfg.spec.table, cfg.spec.query))
    if read_plan is not inputs.old_plan:
        run_dir.write_plan(read_plan.to_dict())
    units = read_plan.units
    todo, done_shards = units_to_read(run_dir, units, previous.fingerprint if previous else None,
                                      on_quarantine=lambda error: print(
                                          f"ray-embed: {error}", file=sys.stderr))
    before = run_dir.rows_done()
    encode_started = time.monotonic()
    wall_started = time.time()
    if todo:
        previous_ref = ray.put(previous) if previous else None
        ds = build_dataset(todo, cfg, (device, precision), info, template, run_dir, plan,
                           done_shards, previous_ref, pinned_revision(job["model"]["identity"]))
        tally = ShardTally()
        publisher = (ShardPublisher(run_dir, tally, options.upload, options.upload_every)
                     if options.upload_every else contextlib.nullcontext())
        memory = DriverMemory()
        with Progress(tally, estimate_total_rows(units, options.limit), before), publisher, \
                memory:
            ds = write_shards(ds, run_dir, tally)
        stats.pipeline = {**pipeline_rates(ds, tally, wall_started, cluster),
                          "driver_rss_mib": memory.summary()}
    stats.encode_s = time.monotonic() - encode_started
    stats.embedded_now = run_dir.rows_done() - before


def write_shards(ds, run_dir: RunDir, tally: ShardTally):
    """Run the dataset to its end: each encoded block is written as one shard by a Ray task
    (`write_shard_block`), and the driver adds the shard it names to `tally` as it comes.
    Returns the executed dataset (its stats)."""
    written = ds.map_batches(write_shard_block, batch_size=None, batch_format="pyarrow",
                             num_cpus=WRITE_CPUS, fn_kwargs={"run_url": run_dir.url})
    for batch in written.iter_batches(batch_size=None, batch_format="pyarrow"):
        for name, rows in zip(batch.column("shard").to_pylist(),
                              batch.column("rows").to_pylist()):
            tally.add(name, rows)
    return written


def pipeline_rates(ds, tally: ShardTally, wall_started: float, cluster: dict) -> dict:
    """Start-up and steady-state rate from the shard timeline; Ray Data's time per operator."""
    rates = steady_state(tally.timeline(), wall_started)
    try:
        operators = operator_times(ds.get_stats_summary())
    except Exception as exc:  # noqa: BLE001 - Ray's stats are a developer API: never fail a run
        log.debug("no Ray Data stats: %s", exc)
        operators = []
    cpus = float(cluster.get("CPU", 0))
    rows = tally.rows()
    return {**rates, "cpus": cpus, "steady_docs_per_s_per_cpu":
            per_core(rates["steady_docs_per_s"], cpus), **data_path_rate(operators, rows),
            "operators": operators}


def run_map(run_dir: RunDir) -> dict:
    """`--map`: the map, or why there is none (a run too small for one still finishes)."""
    try:
        return map_summary(build_map(run_dir))
    except UserError as exc:
        print(f"ray-embed: no map: {exc}", file=sys.stderr)
        return {"skipped": str(exc)}


def finalize_run(run_dir: RunDir, stats: RunStats | None = None,
                 previous: str | None = None) -> dict:
    """Merge the shards of `run_dir` into embeddings.h5, run the exports and write
    report.json (last: a reader that sees it sees the rest). `previous`: the --previous
    location as given (job.json holds it with any credentials redacted)."""
    job = run_dir.load_job()
    spec, options = job["config"]["spec"], job["config"]["options"]
    stats = stats or RunStats(started=time.monotonic())
    precision = job.get("precision") or spec["precision"]
    previous_at = previous or options.get("previous")
    previous = previous_h5(previous_at) if previous_at else None
    url_template = JobConfig.from_dict(job["config"]).options.resolved_url_template
    plan = frozen_plan(run_dir)
    merge = MergeSpec(h5_attributes(job, precision), url_template, bool(job["model"]["normalized"]),
                      str(previous) if previous else None,
                      Storage(options["storage_dtype"], options["compression"]),
                      plan.units if plan else None)
    result = finalize(run_dir, merge)
    ran = result.ran_with
    report = build_report(
        result, result.rejected_by_reason, stats.embedded_now, time.monotonic() - stats.started,
        stats.encode_s, stats.resumed, ",".join(ran["devices"]) or stats.device,
        ran["precision"] or precision, stats.replicas, job["model"].get("param_bytes", 0))
    if previous:
        report["incremental"] = {**incremental_counts(run_dir.reuse_counts(), previous),
                                 "previous": options["previous"]}
    if result.reconciliation:
        report["rows_read"] = result.reconciliation["rows_seen"]
        report["reconciliation"] = result.reconciliation
    report["text_cap"] = result.text_cap or text_cap_summary(run_dir.unit_reads())
    if stats.pipeline:
        report["pipeline"] = stats.pipeline
    report["output"] = run_dir.child_url(H5)
    if options.get("map"):
        report["map"] = run_map(run_dir)                      # before the Parquet export
    report["exports"] = run_exports(run_dir, tuple(options.get("exports") or ()),
                                    options.get("truncate_dim"))
    run_dir.write_report(report)
    if options.get("index"):
        build_index(run_dir)
    return report
