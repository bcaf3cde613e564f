"""Wire the stages for one run: plan on the driver, stream through Ray, finalize, report."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from dataclasses import asdict, dataclass

from .config import JobConfig, absolute_inputs
from .driver_memory import DriverMemory
from .encode import calibrate
from .encode.calibrate import Choice
from .encode.model.defaults import DATA_PATH_DOCS_PER_CPU_S, Defaults
from .encode.model.facts import describe, model_folder, prompts_note
from .encode.model.identity import model_identity
from .encode.model.info import ModelInfo
from .encode.model.location import resolve_model_source
from .encode.model.pool_resources import ResourcePlan, plan_resources
from .encode.model.precision import (
    RESOLVED,
    cpu_has_native_bf16,
    may_have_mps,
    pick_device,
    pick_precision,
)
from .encode.model.sizing import job_defaults, node_of, with_defaults
from .encode.replica_actor import EncoderReplica
from .encode.tokenize import model_recipe, texts_encoder, token_array, tokenize_batch
from .errors import UserError
from .extras import check_run_extras
from .finish import RunStats, finalize_run
from .hooks import worker_env_vars
from .publish.upload import ShardPublisher, upload
from .quality.baseline import measure_baseline
from .read.demo import write_demo_corpus
from .read.estimate import RowEstimate
from .read.inputs import SqlSpec, auto_block_bytes, resolve_inputs
from .read.manifest import build_manifest
from .read.plan import ReadPlan, check_resume, frozen_plan, resolve_plan
from .read.previous import (
    Previous,
    check_compatible,
    open_previous,
)
from .read.resume import units_to_read
from .read.sample import first_texts
from .read.sources import units_dataset, units_to_rows
from .read.text import TextTemplate, text_byte_cap
from .redact import redact_url
from .rundir.cleanup import check_output
from .rundir.job import JobRecord
from .rundir.layout import DEMO
from .rundir.progress import Progress
from .rundir.rundir import RunDir
from .rundir.sink import write_shard_block
from .rundir.stage import ActorPool, RunContext, Stage
from .rundir.tally import ShardTally
from .session import ray_session
from .session.task_errors import task_errors
from .throughput import data_path_rate, operator_times, per_core, steady_state

log = logging.getLogger("ray_job")

# A shard write is a few milliseconds of I/O. Holding a whole CPU, it would wait behind the read
# tasks for the CPUs the replicas leave free, its block held in the object store meanwhile.
WRITE_CPUS = 0


def with_resolved_inputs(cfg: JobConfig, run_dir: RunDir) -> JobConfig:
    """Absolute input paths; the built-in demo corpus when no input is given (written into
    the run directory, so that on a cluster every node reads it from the run's store)."""
    if cfg.spec.inputs:
        return absolute_inputs(cfg)
    name = f"{DEMO}/arxiv-demo-{cfg.options.demo_docs}.jsonl"
    if not run_dir.results.has(name):
        with run_dir.results.writer(name) as tmp:
            write_demo_corpus(tmp, cfg.options.demo_docs)
    return cfg.replace(inputs=(run_dir.child_url(name),))


def describe_model(cfg: JobConfig, source: str) -> ModelInfo:
    """The model's tokenizer, length limit, dim and prompts, from its files: the driver never
    loads it. A model whose prompts none is applied on its own says so (one line)."""
    folder = model_folder(cfg.spec, source)
    info = describe(cfg.spec, source, folder)
    note = None if cfg.spec.prompt is not None or cfg.spec.prompt_name is not None else \
        prompts_note(folder, info)
    if note:
        print(f"ray-embed: note: {note}", file=sys.stderr)
    return info


def make_template(cfg: JobConfig, info: ModelInfo) -> TextTemplate:
    spec = cfg.spec
    try:  # TextTemplate checks itself: plain {field}s and {sep} only
        return TextTemplate(spec.text, info.sep_token, spec.clean_whitespace,
                            spec.on_missing_field, text_byte_cap(info.max_seq_length))
    except ValueError as exc:
        raise UserError(str(exc)) from None


def cluster_device(cfg: JobConfig, cluster: dict) -> str:
    """`auto`: cuda where the cluster has GPUs (the replicas run there, not here), else the
    CPU, or Apple's MPS on a Mac (a local run: this machine is the node)."""
    if cfg.options.device != "auto":
        return cfg.options.device
    if cluster.get("GPU", 0) > 0:
        return "cuda"
    return pick_device("auto") if may_have_mps() else "cpu"


def replica_request(cfg: JobConfig, cluster: dict,
                    defaults: Defaults | None = None) -> tuple[str, str]:
    """The device and precision the driver asks of every replica: resolved, never `auto`
    (each replica then settles what it runs on its node: `precision.replica_choice`); on
    CUDA `auto` is the defaults' precision (fp16, or fp16 weights for a model too large)."""
    device = cluster_device(cfg, cluster)
    if cfg.spec.precision == "auto" and device == "cuda" and defaults is not None:
        return device, defaults.precision
    return device, pick_precision(cfg.spec.precision, device)


def run_context(planned: PlannedJob, record: JobRecord, run_dir: RunDir,
                resources: ResourcePlan, previous_ref=None) -> RunContext:
    """The one frozen context every stage of the run is built from: where the run lives and
    the lease's fence, the replica's spec (the record's slice, with the device and precision
    asked of it and the Hub commit every tokenizer and replica loads), the template and
    tokenizer recipe, the --previous run (`previous_ref`) and the CPUs each stage holds."""
    cfg, info, replica = planned.cfg, planned.info, record.replica()
    return RunContext(run_dir.url, run_dir.fence, replica, record.config_hash,
                      asdict(planned.template), cfg.spec.id_field,
                      asdict(model_recipe(info, replica.trust_remote_code, replica.revision)),
                      previous_ref, resources.task_cpus, resources.threads)


def run_stages(planned: PlannedJob, plan: ResourcePlan) -> list[Stage]:
    """The run's stages in data-flow order: read and tokenize (CPU tasks), encode (a pool of
    model replicas), write (the shard sink)."""
    return [
        Stage(units_to_rows, batch_size=1, num_cpus=plan.task_cpus),
        Stage(tokenize_batch, num_cpus=plan.task_cpus),
        # two batches in flight per replica: one computing, the next already delivered to it;
        # the host memory a replica needs, reserved, also keeps Ray from fusing the CPU
        # tokenize tasks into the encoder actors (fusion needs equal remote args)
        Stage(EncoderReplica, batch_size=planned.cfg.options.shard_rows,
              num_cpus=plan.actor_cpus, num_gpus=plan.actor_gpus or None,
              memory=replica_memory_bytes(planned.info),
              actors=ActorPool(plan.min_replicas, plan.replicas, in_flight=2)),
        Stage(write_shard_block, num_cpus=WRITE_CPUS),
    ]


def build_dataset(units, stages: list[Stage], context: RunContext, done_shards,
                  manifest=None):
    """The Ray Dataset of one run: its read units, then each stage of `stages` in turn, every
    one built from `context`. `done_shards`: per unit, the shards holding its rows done
    earlier (read/resume.py); `manifest`: the frozen plan's, which each read task checks its
    file against."""
    ds = units_dataset(units, done_shards, manifest)
    for stage in stages:
        ds = apply_stage(ds, stage, context)
    return ds


def apply_stage(ds, stage: Stage, context: RunContext):
    """`ds` with `stage` added: a map_batches of tasks, or of an actor pool."""
    args = {"batch_size": stage.batch_size, "batch_format": "pyarrow",
            "num_cpus": stage.num_cpus, **worker_args()}
    if stage.num_gpus:
        args["num_gpus"] = stage.num_gpus
    if stage.memory:
        args["memory"] = stage.memory
    if stage.actors is None:
        return ds.map_batches(stage.fn, fn_kwargs={"context": context}, **args)
    from ray.data import ActorPoolStrategy

    pool = stage.actors
    return ds.map_batches(stage.fn, fn_constructor_kwargs={"context": context},
                          compute=ActorPoolStrategy(min_size=pool.min_size,
                                                    max_size=pool.max_size,
                                                    max_tasks_in_flight_per_actor=pool.in_flight),
                          **args)


def worker_args() -> dict:
    """Ray arguments every stage's workers get: the test hooks' switch, when it is set
    (hooks.py), in their `runtime_env`, so that a cluster the driver only connected to sees
    it too; nothing in production."""
    env_vars = worker_env_vars()
    return {"runtime_env": {"env_vars": env_vars}} if env_vars else {}


def replica_memory_bytes(info: ModelInfo) -> int:
    """Host memory of one replica: measured ~840 MiB for MiniLM (90 MB of weights) on CPU."""
    return 4 * info.param_bytes + 768 * 2**20


def run(cfg: JobConfig) -> dict:
    """Run the whole job; returns the report (also written to OUT/report.json). Everything
    that can be checked is checked before the run directory is touched and before Ray
    starts; the run's lease is then held until the report is written and the result
    published, and every write checks it is still held (rundir/fence.py)."""
    stats = RunStats(started=time.monotonic())
    run_dir = RunDir.at(cfg.options.output)
    check_output(run_dir.store, cfg.options.fresh)    # a file, or --fresh on a user's folder
    planned = plan_job(cfg, run_dir)
    with run_dir.held() as run_dir:
        report = encode_and_finalize(planned, run_dir, stats)
        if cfg.options.upload:
            published = upload(run_dir, cfg.options.upload)
            report["upload"] = {"destination": redact_url(cfg.options.upload),
                                "uploaded": published.uploaded,
                                "unchanged": published.unchanged}
    return report


@dataclass(frozen=True)
class PlannedJob:
    """A job checked on the driver, before anything in its run directory is touched: its
    inputs found and fingerprinted (`manifest`), the model's facts and identity read, the
    template checked, the --previous run read and pinned (`previous`). All its record lacks
    is the device and precision (`record`)."""
    cfg: JobConfig
    files: list
    manifest: list[dict]
    info: ModelInfo
    template: TextTemplate
    identity: dict
    previous: Previous | None = None

    def record(self, device: str, precision: str, choice: Choice | None = None) -> JobRecord:
        return JobRecord.new(self.cfg, self.info, self.identity, device, precision,
                             self.previous.pin if self.previous else None,
                             choice.to_dict() if choice else None)


def plan_job(cfg: JobConfig, run_dir: RunDir) -> PlannedJob:
    info = describe_model(cfg, resolve_model_source(cfg.spec.model))
    check_run_extras(cfg.options)
    template = make_template(cfg, info)
    cfg = with_resolved_inputs(cfg, run_dir)
    files = resolve_inputs(cfg.spec.inputs)
    previous = open_previous(cfg.options.previous) if cfg.options.previous else None
    return PlannedJob(cfg, files, build_manifest(files), info, template,
                      model_identity(cfg.spec, info.source), previous)


def encode_and_finalize(planned: PlannedJob, run_dir: RunDir, stats: RunStats) -> dict:
    cfg = planned.cfg
    old_plan = None if cfg.options.fresh else frozen_plan(run_dir)
    carried = None
    if not cfg.options.fresh and run_dir.has_job():     # refused before the session opens
        carried = run_dir.load_job()
        carried.check_carried_on_by(cfg, planned.identity, run_dir.url, planned.info)
        check_resume(old_plan, planned.manifest, cfg.options.limit, run_dir.url)
        stats.resumed = bool(run_dir.shards.names())
    with ray_session(cfg) as ray:
        encode_all(ray, planned, old_plan, run_dir, stats, carried)
    return finalize_run(run_dir, stats, cfg.options.previous)


@dataclass(frozen=True)
class EncodePlan:
    """How this cluster runs the job: the defaults chosen for what the user left unset (in
    `planned.cfg`), the device, the resources and the precision (and CPU threads) every
    replica runs, and the run's record (job.json) that follows from them."""
    planned: PlannedJob
    cluster: dict
    defaults: Defaults
    device: str
    resources: ResourcePlan
    choice: Choice
    record: JobRecord


def encode_all(ray, planned: PlannedJob, old_plan: ReadPlan | None, run_dir: RunDir,
               stats: RunStats, carried: JobRecord | None = None) -> None:
    """Plan the encode on this cluster (`carried`: the record of the run this one carries on,
    whose precision it keeps), record the run (job.json and the read plan, once, before any
    shard), then stream every row not yet in a shard through the cluster."""
    plan = plan_encode(ray, planned, carried)
    stats.device, stats.replicas = plan.device, plan.resources.replicas
    read_plan = record_run(run_dir, plan, old_plan)
    stream_rows(ray, plan, read_plan, run_dir, stats)
    replica = plan.record.replica()
    stats.random_text_cosine = measure_baseline(
        ray, replica, dict(planned.identity),
        model_recipe(planned.info, replica.trust_remote_code, replica.revision),
        plan.resources.actor_cpus, plan.resources.actor_gpus, run_dir.shards.rows_done())


def plan_encode(ray, planned: PlannedJob, carried: JobRecord | None) -> EncodePlan:
    """The device, resources, defaults and precision of the run on this cluster (writes
    nothing; calibrating the precision may run a task on the cluster)."""
    cfg = planned.cfg
    cluster = ray.cluster_resources()
    defaults = job_defaults(planned.info, node_of(cluster, cluster_device(cfg, cluster),
                                                  cpu_has_native_bf16()), cfg.options.shard_rows)
    cfg = with_defaults(cfg, defaults)            # what the user left unset, chosen
    planned = dataclasses.replace(planned, cfg=cfg)   # the record holds what was chosen
    options = cfg.options
    device, precision = replica_request(cfg, cluster, defaults)
    resources = plan_resources(cluster, device, options.replicas, options.gpus_per_replica,
                               options.cpus_per_replica, options.threads_per_replica)
    choice = choose_precision(ray, planned, carried, device, precision, resources, defaults,
                              float(cluster.get("CPU", 1)))
    if choice.threads and not options.threads_per_replica:
        resources = dataclasses.replace(resources, threads=choice.threads)
    return EncodePlan(planned, cluster, defaults, device, resources, choice,
                      planned.record(device, choice.precision, choice))


def record_run(run_dir: RunDir, plan: EncodePlan, old_plan: ReadPlan | None) -> ReadPlan:
    """Write the run's record (job.json) and its read plan (when new, or its limit changed)
    into the run directory, after checking the --previous run is compatible; the read plan."""
    planned, options = plan.planned, plan.planned.cfg.options
    if planned.previous:
        check_compatible(planned.previous, plan.record.compat_attrs(), options.previous)
    run_dir.start(plan.record, options.fresh)
    spec = planned.cfg.spec
    block_bytes = options.block_bytes or auto_block_bytes(planned.files,
                                                          plan.resources.replicas * 4)
    read_plan = resolve_plan(old_plan, planned.files, planned.manifest, block_bytes,
                             options.limit, SqlSpec(spec.id_field, spec.table, spec.query))
    if old_plan is None or read_plan.limit != old_plan.limit:
        run_dir.write_plan(read_plan.to_dict())
    return read_plan


def stream_rows(ray, plan: EncodePlan, read_plan: ReadPlan, run_dir: RunDir,
                stats: RunStats) -> None:
    """Every row of the read plan not yet in a shard, read, tokenized, encoded and written
    as shards by the cluster; what it did into `stats`."""
    planned, options, resources = plan.planned, plan.planned.cfg.options, plan.resources
    previous = planned.previous
    todo, done_shards = units_to_read(run_dir, read_plan.units,
                                      previous.fingerprint if previous else None,
                                      on_quarantine=lambda error: print(
                                          f"ray-embed: {error}", file=sys.stderr))
    before = run_dir.shards.rows_done()
    encode_started = time.monotonic()
    wall_started = time.time()
    if todo:
        context = run_context(planned, plan.record, run_dir, resources,
                              ray.put(previous) if previous else None)
        ds = build_dataset(todo, run_stages(planned, resources), context, done_shards,
                           read_plan.manifest)
        tally = ShardTally()
        publisher = (ShardPublisher(run_dir, tally, options.upload, options.upload_every)
                     if options.upload_every else contextlib.nullcontext())
        memory = DriverMemory()
        rows = RowEstimate(todo, options.limit and max(0, options.limit - before))
        with Progress(tally, rows.total), publisher, memory, task_errors():
            ds = write_shards(ds, tally, rows.seen)
        stats.pipeline = {**pipeline_rates(ds, tally, wall_started, plan.cluster),
                          "driver_rss_mib": memory.summary(),
                          "defaults": {**defaults_record(plan.defaults, options),
                                       "precision": plan.choice.to_dict(),
                                       "threads": resources.threads}}
    stats.encode_s = time.monotonic() - encode_started
    stats.embedded_now = run_dir.shards.rows_done() - before


def choose_precision(ray, planned: PlannedJob, carried: JobRecord | None, device: str,
                     precision: str, plan: ResourcePlan, defaults: Defaults,
                     cluster_cpus: float) -> Choice:
    """The precision (and CPU threads) every replica runs: a carried-on run's own (one run
    never mixes precisions), the one asked for (threads by the rule), or, for `auto`, the
    fastest that keeps the vectors, timed with the threads in a replica's place on the
    corpus's first papers (`encode.calibrate`)."""
    if carried is not None and carried.precision:
        timed = Choice.from_dict(carried.precision_choice) if carried.precision_choice else None
        return Choice(carried.precision, None, f"{carried.precision}: the run's own, kept "
                      f"(job.json)", timed.trials if timed else (), timed.docs if timed else 0)
    spec = planned.cfg.spec
    if spec.precision != "auto":
        return Choice(precision, None, f"{precision}: asked for")
    reused = planned.previous.attrs.get("precision") if planned.previous else None
    if reused in RESOLVED:
        return Choice(reused, None, f"{reused}: the --previous run's, whose vectors it reuses")
    threads = calibrate.thread_options(plan.threads) if device == "cpu" else (1,)
    if planned.cfg.options.threads_per_replica:
        threads = (plan.threads,)
    precisions = calibrate.candidates(device, cpu_has_native_bf16())
    if device == "cuda" and defaults.precision != "fp16":   # fp32 would not fit beside others
        precisions = (precision,)
    if len(precisions) < 2 and len(threads) < 2:
        return Choice(precision, None, f"{precision}: the rule (nothing to time)")
    return calibrate_on_cluster(ray, planned, device, precisions, threads, plan, cluster_cpus,
                                precision)


def calibrate_on_cluster(ray, planned: PlannedJob, device: str, precisions: tuple[str, ...],
                         threads: tuple[int, ...], plan: ResourcePlan, cluster_cpus: float,
                         rule: str) -> Choice:
    """`calibrate.calibrate` in a Ray task holding one replica's resources, on the first
    papers of the corpus tokenized here (the data path's CPU-seconds a doc measured with
    them); `rule`: the precision where there is nothing to time it on."""
    cfg, info = planned.cfg, planned.info
    started = time.process_time()
    texts = first_texts(planned.files, planned.template, cfg.spec.id_field,
                        SqlSpec(cfg.spec.id_field, cfg.spec.table, cfg.spec.query),
                        calibrate.SAMPLE_DOCS)
    if not texts:
        return Choice(rule, None, f"{rule}: the rule (no text to time)")
    record = planned.record(device, precisions[0])
    ids = token_array(texts_encoder(model_recipe(info, cfg.spec.trust_remote_code,
                                                 record.revision))(texts))
    data_s = max((time.process_time() - started) / len(texts), 1 / DATA_PATH_DOCS_PER_CPU_S)
    # the models it loads are freed when it ends; its worker may serve other tasks (Ray gives
    # a GPU task's worker one call only, which frees its CUDA context)
    task = ray.remote(num_cpus=plan.actor_cpus,
                      num_gpus=plan.actor_gpus or 0)(calibrate.calibrate)
    return ray.get(task.remote(record.replica(), ids, dict(planned.identity), precisions,
                               threads, cluster_cpus / plan.replicas, data_s))


def defaults_record(defaults: Defaults, options) -> dict:
    """What the run chose (report.json): the token budget and GPUs per replica it ran with,
    and the rule's reasons."""
    return {"max_batch_tokens": options.max_batch_tokens,
            "gpus_per_replica": options.gpus_per_replica,
            "tokenize_cpus_per_gpu": defaults.tokenize_cpus_per_gpu, "why": list(defaults.why)}


def write_shards(written, tally: ShardTally, read=None):
    """Run the dataset to its end: its last stage, the shard sink, writes each encoded block
    as one shard and names it (`write_shard_block`); the driver adds the shard to `tally` as
    it comes (and tells `read(first_key, last_key, rows)` which units it holds). Returns the
    executed dataset (its stats)."""
    # prefetch_batches=0: with Ray Data's default (1) the driver hears of each shard only once
    # the next one is written, and progress, ETA and --upload-every lag by a shard
    for batch in written.iter_batches(batch_size=None, batch_format="pyarrow",
                                      prefetch_batches=0):
        for name, rows, first, last in zip(*(batch.column(c).to_pylist() for c in (
                "shard", "rows", "first_key", "last_key")), strict=True):
            tally.add(name, rows)
            if read is not None:
                read(first, last, rows)
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
