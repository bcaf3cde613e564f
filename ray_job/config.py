"""The job config: one validated, frozen object built from a YAML file and CLI overrides.

It has two parts:

* `OutputSpec`: what defines the embeddings (inputs, model, template, ...). It is hashed; a run
  directory made with another spec is refused, and `--previous` compares it.
* `RunOptions`: how to run it (where to write, resources, batching, exports, publishing).

Settings are flat in YAML files and flags (`model`, `limit`, ...); `JobConfig.of(**flat)` and
`JobConfig.from_dict(flat)` sort them into the two parts. Both parts are plain data
(`to_dict` / `from_dict`), so what a Ray task needs travels as a dict.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from .config_checks import check_types, validate
from .errors import ConfigError
from .redact import redact_url

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


@dataclass(frozen=True)
class OutputSpec:
    """What the embeddings are: a run directory made with another spec is refused."""
    inputs: tuple[str, ...] = ()          # empty = the built-in demo corpus
    model: str | None = None              # None = the bundled all-MiniLM-L6-v2
    adapter: str | None = None            # an `adapters` adapter (Hub name or folder), active
    backend: str = "auto"
    pooling: str | None = None            # transformers backend only: cls | mean
    normalize: bool | None = None         # None = what the model says (ST) / False
    text: str = "{title}{sep}{abstract}"
    id_field: str = "id"
    table: str | None = None              # DuckDB input: read this table ...
    query: str | None = None              # ... or the rows of this query
    max_seq_length: int | None = None     # None = the model's own
    precision: str = "auto"               # requested; what ran is recorded per shard
    clean_whitespace: bool = True
    on_missing_field: str = "reject"
    trust_remote_code: bool = False

    def config_hash(self) -> str:
        """Of the inputs as job.json records them (credentials redacted): a pre-signed URL
        with a new signature is the same input, and resumes."""
        data = {**dataclasses.asdict(self), "inputs": [redact_url(i) for i in self.inputs]}
        blob = json.dumps(data, sort_keys=True, default=list).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class RunOptions:
    """How to run the job: none of these change what the embeddings are."""
    output: str = "out"
    url_template: str | None = None
    limit: int | None = None
    previous: str | None = None           # an earlier run dir or embeddings.h5 to reuse from
    max_batch_tokens: int | None = None   # None = from the model and the node
                                          # (encode/defaults.py; 16384 on CPUs)
    max_batch_rows: int = 256
    shard_rows: int = 512                 # rows per encoder call; a shard file holds the output
                                          # of one actor task: >= this, whole read units
    device: str = "auto"
    replicas: int | None = None           # None = sized from the cluster's resources
    gpus_per_replica: float | None = None  # None = from the model (encode/defaults.py)
    cpus_per_replica: float = 1.0
    threads_per_replica: int | None = None
    block_bytes: int | None = None        # size of one read unit; None = from input size
    compile: bool = False                 # torch.compile the forward pass (CUDA)
    demo_docs: int = 2000
    address: str | None = None            # Ray address; None = start an embedded local Ray
    fresh: bool = False
    verbose: bool = False
    storage_dtype: str = "float32"        # embeddings.h5 dtype: float32 | float16
    compression: str | None = None        # embeddings.h5 compression: gzip | lzf
    exports: tuple[str, ...] = ()         # also write: parquet, duckdb, int8, binary, lance
    truncate_dim: int | None = None       # the int8 / binary exports keep the first D dims
    map: bool = False                     # lay the papers out in 2-D after finalizing (map/)
    upload: str | None = None             # publish the result here (hf://datasets/..., s3://...)
    upload_every: int | None = None       # ... and every N new shards while running
    strict: bool = False                  # any reject makes the run fail (exit code 1)
    index: bool = False                   # build the nearest-neighbour index after finalizing

    @property
    def resolved_url_template(self) -> str | None:
        return URL_PRESETS.get(self.url_template, self.url_template)


SPEC_FIELDS = tuple(f.name for f in fields(OutputSpec))
OPTION_FIELDS = tuple(f.name for f in fields(RunOptions))
TUPLE_FIELDS = ("inputs", "exports")


@dataclass(frozen=True)
class JobConfig:
    spec: OutputSpec = OutputSpec()
    options: RunOptions = RunOptions()

    def __post_init__(self) -> None:
        validate(self.spec, self.options)

    @classmethod
    def of(cls, **settings: Any) -> "JobConfig":
        """From flat settings (`model=..., limit=...`), as in YAML files and flags."""
        return cls.from_dict(settings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "JobConfig":
        """Flat settings, or the nested form `to_dict` writes ({"spec": ..., "options": ...})."""
        if set(data) <= {"spec", "options"} and data:
            data = {**data.get("spec", {}), **data.get("options", {})}
        unknown = sorted(set(data) - set(SPEC_FIELDS) - set(OPTION_FIELDS))
        if unknown:
            known = ", ".join(sorted(SPEC_FIELDS + OPTION_FIELDS))
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)} (known: {known})")
        values = {k: _as_str_tuple(k, v) if k in TUPLE_FIELDS else v for k, v in data.items()}
        check_types(OutputSpec, values)
        check_types(RunOptions, values)
        spec = OutputSpec(**{k: v for k, v in values.items() if k in SPEC_FIELDS})
        options = RunOptions(**{k: v for k, v in values.items() if k in OPTION_FIELDS})
        return cls(spec, options)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": dataclasses.asdict(self.spec), "options": dataclasses.asdict(self.options)}

    def flat(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.spec), **dataclasses.asdict(self.options)}

    def replace(self, **settings: Any) -> "JobConfig":
        """A copy with some flat settings changed (validated again)."""
        return JobConfig.from_dict({**self.flat(), **settings})

    def config_hash(self) -> str:
        """Hash of the settings that define the output (not the resources or paths)."""
        return self.spec.config_hash()


def _as_str_tuple(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{name} must be a string or a list of strings; got {value!r}")


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
    from .storage.files import is_url

    def absolute(p: str) -> str:
        local = Path(p).expanduser()
        return str(local.resolve()) if not is_url(p) and local.exists() else p

    return cfg.replace(inputs=tuple(absolute(p) for p in cfg.spec.inputs))


def apply_preset(data: dict[str, Any]) -> dict[str, Any]:
    name = data.pop("preset", None)
    if name is None:
        return data
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(sorted(PRESETS))})")
    return {**PRESETS[name], **data}


def build_config(yaml_path: str | None, overrides: Mapping[str, Any],
                 defaults: Mapping[str, Any] | None = None) -> JobConfig:
    """`defaults`, then a preset's settings, then the YAML file's, then every override that is
    not None."""
    data: dict[str, Any] = load_yaml(yaml_path) if yaml_path else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return JobConfig.from_dict({**(defaults or {}), **apply_preset(data)})
