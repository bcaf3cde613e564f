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

from .config_checks import PROMPT_PAIRS, check_types, validate
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
    # the prompts these families' cards ask for, which their sentence-transformers configs do
    # not carry (a model's own prompts are applied without a preset: encode/prompts.py)
    "e5": {"model": "intfloat/e5-base-v2", "prompt": "passage: ", "query_prompt": "query: "},
    "bge": {"model": "BAAI/bge-base-en-v1.5",
            "query_prompt": "Represent this sentence for searching relevant passages: "},
    "nomic": {"model": "nomic-ai/nomic-embed-text-v1.5", "prompt": "search_document: ",
              "query_prompt": "search_query: "},
    # EmbeddingGemma's card: a document with a title is "title: {title} | text: {content}",
    # with no prompt before it (its "document" prompt is that format for a document without one)
    "embeddinggemma": {"model": "google/embeddinggemma-300m", "prompt": "",
                       "text": "title: {title} | text: {abstract}"},
}


@dataclass(frozen=True)
class OutputSpec:
    """What the embeddings are: a run directory made with another spec is refused."""
    inputs: tuple[str, ...] = ()          # empty = the built-in demo corpus
    model: str | None = None              # None = the bundled all-MiniLM-L6-v2
    adapter: str | None = None            # an `adapters` adapter (Hub name or folder), active
    backend: str = "auto"
    pooling: str | None = None            # transformers backend only: cls | mean | lasttoken
    normalize: bool | None = None         # None = what the model says (ST) / False
    prompt: str | None = None             # before every document ('' = none); None = the
    prompt_name: str | None = None        # ... model's (encode/prompts.py), or its prompt so named
    query_prompt: str | None = None       # before a query (search), likewise; not hashed:
    query_prompt_name: str | None = None  # ... it leaves the stored vectors as they are
    truncate_dim: int | None = None       # vectors of the first D dims (Matryoshka); None = the
                                          # model's own truncate_dim, else its whole dimension
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
        with a new signature is the same input, and resumes. The settings added after the
        first release count only when set (a run made before them resumes); the query side's
        prompt never (it changes no stored vector)."""
        data = {**dataclasses.asdict(self), "inputs": [redact_url(i) for i in self.inputs]}
        for name in HASHED_WHEN_SET:
            if data[name] is None:
                del data[name]
        for name in NOT_HASHED:
            del data[name]
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
    map: bool = False                     # lay the papers out in 2-D after finalizing (map/)
    upload: str | None = None             # publish the result here (hf://datasets/..., s3://...)
    upload_every: int | None = None       # ... and every N new shards while running
    strict: bool = False                  # any reject makes the run fail (exit code 1)
    index: bool = False                   # build the nearest-neighbour index after finalizing

    @property
    def resolved_url_template(self) -> str | None:
        return URL_PRESETS.get(self.url_template, self.url_template)


# OutputSpec fields of later releases than the first: hashed when set (`config_hash`)
HASHED_WHEN_SET = ("prompt", "prompt_name", "truncate_dim")
NOT_HASHED = ("query_prompt", "query_prompt_name")
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
    preset = dict(PRESETS[name])
    for pair in PROMPT_PAIRS:        # the user's prompt, by text or by name, replaces the preset's
        if any(data.get(key) is not None for key in pair):
            for key in pair:
                preset.pop(key, None)
    return {**preset, **data}


def build_config(yaml_path: str | None, overrides: Mapping[str, Any],
                 defaults: Mapping[str, Any] | None = None) -> JobConfig:
    """`defaults`, then a preset's settings, then the YAML file's, then every override that is
    not None."""
    data: dict[str, Any] = load_yaml(yaml_path) if yaml_path else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return JobConfig.from_dict({**(defaults or {}), **apply_preset(data)})
