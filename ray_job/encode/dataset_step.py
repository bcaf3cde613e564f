"""`embed_dataset(ds, model=..., text=...)`: the encode stage as a step of a user's own Ray
Dataset, which comes back with an embedding column added.

The step is the product's own encode stage on other rows: the model described from its files
on the driver (`model_facts.describe`, with the document prompt its config applies), the
text template (`read.text.TextTemplate`, the same text cap), the tokenize recipe
(`tokenize.model_recipe`, a CPU task) and the model replica (`encoder.Encoder`, an actor
pool). So for the same model, template and precision its vectors are those `ray-embed run`
writes to embeddings.h5. Settings are the run's config keys (`JobConfig`), checked the same
way; a row whose text cannot be made (a missing field with `on_missing_field="reject"`) stops
the step with that row's error: a row is never dropped silently.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..config import JobConfig
from ..errors import ConfigError, UserError
from ..read.text import RejectRow, TextTemplate, cap_text, text_byte_cap
from ..rundir.job import pinned_revision
from ..rundir.replica import ReplicaSpec
from .model.facts import describe, model_folder
from .model.identity import model_identity
from .model.location import resolve_model_source
from .model.precision import may_have_mps, pick_device, pick_precision
from .tokenize import TokenizerRecipe, model_recipe, texts_encoder, token_array

if TYPE_CHECKING:
    import ray.data

IDS_COLUMN = "__ray_embed_input_ids"      # token ids between the tokenize and encode steps


@dataclass(frozen=True)
class EmbedStep:
    """What the step's tasks and replicas get, made once on the driver."""
    template: TextTemplate
    recipe: TokenizerRecipe
    replica: ReplicaSpec
    replicas: int
    cpus_per_replica: float
    gpus_per_replica: float
    threads: int | None
    batch_rows: int


def embed_dataset(ds: ray.data.Dataset, model: str | None = None,
                  text: str = "{title}{sep}{abstract}", *, column: str = "embedding",
                  config: JobConfig | None = None, **settings: Any) -> ray.data.Dataset:
    """`ds` with a `column` of embeddings (fixed-size lists of float32) added to every row.

    `model`: a Hub name or a local folder (None: the bundled all-MiniLM-L6-v2); `text`: the
    template over the rows' fields (`{sep}`: the tokenizer's separator). Any other run setting
    by its config key: `precision`, `prompt`, `prompt_name`, `truncate_dim`, `normalize`,
    `pooling`, `backend`, `adapter`, `max_seq_length`, `clean_whitespace`,
    `on_missing_field`, `trust_remote_code`, `device`, `replicas` (default 1),
    `cpus_per_replica`, `gpus_per_replica`, `threads_per_replica`, `max_batch_tokens`,
    `max_batch_rows`, `shard_rows` (rows per replica call); or a whole `config`
    (a JobConfig), which `model`, `text` and `settings` then override. Lazy, like any
    Dataset step: nothing runs until the dataset is consumed. `precision="auto"` takes the
    rule's precision for the device (the run may time a faster one: pass the run's
    precision to get its very vectors)."""
    step = plan_step(step_config(config, model, text, settings))
    return add_embeddings(ds, step, column)


def step_config(config: JobConfig | None, model: str | None, text: str,
                settings: dict[str, Any]) -> JobConfig:
    """The settings, checked as the run's (one-line ConfigError)."""
    if config is not None and not isinstance(config, JobConfig):
        raise ConfigError(f"config must be a JobConfig; got {type(config).__name__}")
    base = config.flat() if config is not None else {}
    given = {"model": model, "text": text, **settings}
    return JobConfig.from_dict({**base, **{k: v for k, v in given.items() if v is not None}})


def plan_step(cfg: JobConfig) -> EmbedStep:
    """The model described from its files (the driver never loads it), the template
    checked, the device and precision resolved."""
    spec, options = cfg.spec, cfg.options
    source = resolve_model_source(spec.model)
    info = describe(spec, source, model_folder(spec, source))
    try:
        template = TextTemplate(spec.text, info.sep_token, spec.clean_whitespace,
                                spec.on_missing_field, text_byte_cap(info.max_seq_length))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    revision = pinned_revision(model_identity(spec, info.source))
    device = step_device(options.device)
    precision = pick_precision(spec.precision, device)
    replica = ReplicaSpec.of(spec, options, info.source, revision, device, precision, info)
    gpus = (options.gpus_per_replica or 1.0) if device == "cuda" else 0.0
    return EmbedStep(template, model_recipe(info, spec.trust_remote_code, revision), replica,
                     options.replicas or 1, options.cpus_per_replica, gpus,
                     options.threads_per_replica or max(1, int(options.cpus_per_replica)),
                     options.shard_rows)


def step_device(requested: str) -> str:
    """`auto`: cuda where the Ray cluster has GPUs, else the CPU (or MPS on a Mac)."""
    if requested != "auto":
        return requested
    import ray

    if ray.is_initialized() and ray.cluster_resources().get("GPU", 0) > 0:
        return "cuda"
    return pick_device("auto") if may_have_mps() else "cpu"


def add_embeddings(ds: ray.data.Dataset, step: EmbedStep, column: str) -> ray.data.Dataset:
    """Tokenize (CPU tasks), then encode (a pool of `step.replicas` model replicas)."""
    from ray.data import ActorPoolStrategy

    from .column_replica import EmbeddingColumnReplica

    ds = ds.map_batches(tokenize_rows, batch_format="pyarrow",
                        fn_kwargs={"template": asdict(step.template),
                                   "recipe": asdict(step.recipe), "column": column})
    return ds.map_batches(
        EmbeddingColumnReplica, batch_size=step.batch_rows, batch_format="pyarrow",
        compute=ActorPoolStrategy(size=step.replicas),
        num_cpus=step.cpus_per_replica, num_gpus=step.gpus_per_replica or None,
        fn_constructor_kwargs={"replica": step.replica, "ids_column": IDS_COLUMN,
                               "column": column, "threads": step.threads})


def tokenize_rows(batch: pa.Table, template: dict, recipe: dict, column: str) -> pa.Table:
    """Ray map_batches function: the batch with the token ids of each row's text added (the
    text made by the template and cut to its cap, as the read stage makes it); `column`: the
    embeddings' column to come, which the rows must not have already."""
    if column in batch.column_names:
        raise UserError(f"the dataset already has a column {column!r}: name another "
                        f"(column=...)")
    tmpl = TextTemplate(**template)
    fields = [name for name in tmpl.fields if name in batch.column_names]
    records = batch.select(fields).to_pylist() if fields else [{}] * batch.num_rows
    texts = [row_text(tmpl, record, row) for row, record in enumerate(records)]
    ids = token_array(texts_encoder(TokenizerRecipe(**recipe))(texts)) if texts else \
        pa.array([], pa.list_(pa.int32()))
    return batch.append_column(IDS_COLUMN, ids)


def row_text(template: TextTemplate, record: dict, row: int) -> str:
    try:
        return cap_text(template.render(record), template.max_bytes)[0]
    except RejectRow as exc:
        raise UserError(f"row {row} of a batch has no text to embed: {exc} (template "
                        f"{template.template!r}; on_missing_field='empty' embeds what there "
                        f"is)") from None
