"""The job config: one validated, frozen object built from a YAML file and CLI overrides.

It travels to Ray tasks and actors as plain data (`to_dict` / `from_dict`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import ConfigError

URL_PRESETS = {"arxiv": "https://arxiv.org/pdf/{id}.pdf"}
# Named bundles of settings; explicit settings (YAML or flags) win over a preset's.
PRESETS: dict[str, dict[str, Any]] = {
    # allenai's published recipe: base model + proximity adapter (active), CLS pooling,
    # title + sep_token + abstract (abstract may be missing), max_length 512, no token type ids
    "specter2": {"model": "allenai/specter2_base", "adapter": "allenai/specter2",
                 "backend": "transformers", "pooling": "cls", "normalize": False,
                 "text": "{title}{sep}{abstract}", "max_seq_length": 512,
                 "on_missing_field": "empty"},
}
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
DEVICES = ("auto", "cpu", "cuda", "mps")
BACKENDS = ("auto", "sentence-transformers", "transformers")
POOLINGS = ("cls", "mean")
MISSING_FIELD_POLICIES = ("reject", "empty")

# Fields that change what the embeddings are: a run directory made with other values is refused.
OUTPUT_DEFINING_FIELDS = (
    "inputs", "model", "adapter", "backend", "pooling", "normalize", "text", "id_field", "table", "query", "max_seq_length",
    "precision", "clean_whitespace", "on_missing_field", "trust_remote_code",
)


@dataclass(frozen=True)
class JobConfig:
    inputs: tuple[str, ...] = ()          # empty = the built-in demo corpus
    output: str = "out"
    model: str | None = None              # None = the bundled all-MiniLM-L6-v2
    adapter: str | None = None            # an `adapters` adapter (Hub name or folder), active
    backend: str = "auto"
    pooling: str | None = None            # transformers backend only: cls | mean
    normalize: bool | None = None         # None = what the model says (ST) / False
    text: str = "{title}{sep}{abstract}"
    id_field: str = "id"
    table: str | None = None              # DuckDB input: read this table ...
    query: str | None = None              # ... or the rows of this query
    url_template: str | None = None
    limit: int | None = None
    previous: str | None = None           # an earlier run dir or embeddings.h5 to reuse from
    max_seq_length: int | None = None     # None = the model's own
    max_batch_tokens: int = 16384
    max_batch_rows: int = 256
    shard_rows: int = 512                 # rows per encoder call; a shard file holds the output
                                          # of one actor task: >= this, whole read units
    precision: str = "auto"
    device: str = "auto"
    replicas: int | None = None           # None = sized from the cluster's resources
    gpus_per_replica: float = 1.0
    cpus_per_replica: float = 1.0
    threads_per_replica: int | None = None
    block_bytes: int | None = None        # size of one read unit; None = from input size
    clean_whitespace: bool = True
    on_missing_field: str = "reject"
    trust_remote_code: bool = False
    compile: bool = False                 # torch.compile the forward pass (CUDA)
    demo_docs: int = 2000
    address: str | None = None            # Ray address; None = start an embedded local Ray
    fresh: bool = False
    verbose: bool = False
    storage_dtype: str = "float32"        # embeddings.h5 dtype: float32 | float16
    compression: str | None = None        # embeddings.h5 compression: gzip | lzf
    exports: tuple[str, ...] = ()         # also write: parquet, duckdb
    upload: str | None = None             # publish the result here (hf://datasets/..., s3://...)
    upload_every: int | None = None       # ... and every N new shards while running
    strict: bool = False                  # any reject makes the run fail (exit code 1)
    index: bool = False                   # build the nearest-neighbour index after finalizing
    # test-only fault injection: the encoder process exits after this many batches, once
    # (the marker file makes it happen once per run, whichever replica gets there first)
    fault_kill_encoder_after: int | None = None
    fault_marker: str | None = None

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)} "
                              f"(known: {', '.join(sorted(known))})")
        values = dict(data)
        for name in ("inputs", "exports"):
            if name in values:
                values[name] = _as_str_tuple(values[name])
        return cls(**values)

    @property
    def resolved_url_template(self) -> str | None:
        return URL_PRESETS.get(self.url_template, self.url_template)

    def config_hash(self) -> str:
        """Hash of the settings that define the output (not the resources or paths)."""
        subset = {name: getattr(self, name) for name in OUTPUT_DEFINING_FIELDS}
        blob = json.dumps(subset, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _as_str_tuple(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    raise ConfigError(f"inputs must be a path or a list of paths, not {type(value).__name__}")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def _check_positive(name: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{name} must be a positive number; got {value!r}")


def _validate(cfg: JobConfig) -> None:
    _check_choice("precision", cfg.precision, PRECISIONS)
    _check_choice("device", cfg.device, DEVICES)
    _check_choice("backend", cfg.backend, BACKENDS)
    _check_choice("on_missing_field", cfg.on_missing_field, MISSING_FIELD_POLICIES)
    if cfg.pooling is not None:
        _check_choice("pooling", cfg.pooling, POOLINGS)
    _check_choice("storage_dtype", cfg.storage_dtype, ("float32", "float16"))
    if cfg.compression is not None:
        _check_choice("compression", cfg.compression, ("gzip", "lzf"))
    for name in cfg.exports:
        _check_choice("exports", name, ("parquet", "duckdb"))
    if cfg.adapter and cfg.backend == "sentence-transformers":
        raise ConfigError("an adapter needs the transformers backend (drop backend, or set it "
                          "to transformers)")
    for name in ("limit", "max_seq_length", "replicas", "threads_per_replica", "block_bytes",
                 "upload_every"):
        _check_positive(name, getattr(cfg, name))
    for name in ("max_batch_tokens", "max_batch_rows", "shard_rows", "gpus_per_replica", "cpus_per_replica",
                 "demo_docs"):
        _check_positive(name, getattr(cfg, name), allow_none=False)
    for name in ("normalize",):
        if getattr(cfg, name) not in (None, True, False):
            raise ConfigError(f"{name} must be true or false; got {getattr(cfg, name)!r}")
    if not isinstance(cfg.text, str) or "{" not in cfg.text:
        raise ConfigError(f"text must be a template with at least one {{field}}; got {cfg.text!r}")
    if cfg.upload_every and not cfg.upload:
        raise ConfigError("upload_every needs upload (the destination)")
    if not cfg.output:
        raise ConfigError("output must be a directory path")


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ConfigError(f"cannot parse config file {p}: {first}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of settings")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def absolute_inputs(cfg: JobConfig) -> JobConfig:
    """Input paths made absolute (URLs and missing paths stay as given), so the config hash
    does not depend on the working directory."""
    from .read.remote_files import is_url

    def absolute(p: str) -> str:
        local = Path(p).expanduser()
        return str(local.resolve()) if not is_url(p) and local.exists() else p

    return dataclasses.replace(cfg, inputs=tuple(absolute(p) for p in cfg.inputs))


def apply_preset(data: dict[str, Any]) -> dict[str, Any]:
    name = data.pop("preset", None)
    if name is None:
        return data
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return {**PRESETS[name], **data}


def build_config(yaml_path: str | None, overrides: Mapping[str, Any]) -> JobConfig:
    """A preset's settings, then the YAML file's, then every override that is not None."""
    data: dict[str, Any] = load_yaml(yaml_path) if yaml_path else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    data = apply_preset(data)
    try:
        return JobConfig.from_dict(data)
    except TypeError as exc:  # wrong value types that dataclass construction rejects
        raise ConfigError(str(exc)) from None
