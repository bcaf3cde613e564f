"""job.json, the record of a run (`JobRecord`): written whole by the driver that starts or
resumes the run, once, before any shard, and read back only through `JobRecord.from_json`.

It holds what the embeddings are (the output spec), how the run was asked to go (the run
options), what the model is (its facts, `ModelInfo`, and its identity: weights digest or Hub
commit), the package versions, and the device and precision the driver resolved for every
replica. URL credentials are redacted in it, so it never holds a secret (what it gives back,
its --previous say, is what job.json says). What the rest of the job needs of it is a method
here: what an earlier embeddings.h5 must share for its vectors to be reused (`compat_attrs`),
the attributes of the embeddings.h5 it makes (`h5_attributes`), what a replica needs
(`replica`), what `status` and the dataset card show (`facts`), and whether another run may
carry it on (`check_carried_on_by`).

Format 3 (this one) says `"format": 3`. Format 2 had no prompts (they load as none: such a run
was embedded without one) and its run options held `truncate_dim`, which cut only the int8 /
binary exports (`export_truncate_dim`; format 3's `truncate_dim` is an output setting that cuts
the vectors themselves). Format 1, release 0.1.0's, is format 2 without `format`; it wrote
device and precision in a second write, so a run that stopped before its first shard has none:
they load as None.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import TUPLE_FIELDS, JobConfig, OutputSpec, RunOptions
from ..errors import DataError, UserError
from ..redact import redact_config
from .replica import ReplicaSpec

FORMAT = 3
VERSIONED_PACKAGES = ("ray_job", "ray", "torch", "transformers", "sentence-transformers",
                      "pyarrow", "h5py", "numpy")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class ModelInfo:
    """What the job needs to know about a model, as plain data (encode/model_info.py derives
    it, from the model's files on the driver or from the loaded model on a replica)."""
    name: str
    source: str               # local folder or Hub name the replicas load
    backend: str
    tokenizer_source: str
    max_seq_length: int
    sep_token: str
    pad_token_id: int
    dim: int
    pooling: str
    normalized: bool
    param_bytes: int = 0
    # how the model's authors call it (encode/prompts.py): the text put before every document
    # and before a query ("" = none) and the model's names for them; `prompt_skip`: leading
    # tokens the Pooling leaves out (the document prompt, for `include_prompt: false`);
    # `lowercase`: the Transformer lowercases its input (`do_lower_case`)
    prompt: str = ""
    prompt_name: str | None = None
    query_prompt: str | None = None     # None: not recorded (format 2), the model's own
    query_prompt_name: str | None = None
    prompt_skip: int = 0
    lowercase: bool = False

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def pinned_revision(identity: Mapping[str, str]) -> str | None:
    """The commit replicas must load for a Hub model (None for a local folder)."""
    weights = identity.get("weights", "")
    return weights.split(":", 1)[1] if weights.startswith("commit:") else None


def check_same_model(old: Mapping[str, str], new: Mapping[str, str], where: str) -> None:
    """A run carried on must run the very model it started with (same weights or Hub commit)."""
    if dict(old) != dict(new):
        raise UserError(f"the model of {where} changed since it started ({dict(old)} -> "
                        f"{dict(new)}); use --fresh to start over, or a new --output")


@dataclass(frozen=True)
class JobRecord:
    spec: OutputSpec                   # URL credentials redacted, as everything here
    options: RunOptions
    config_hash: str
    model: ModelInfo
    identity: Mapping[str, str]        # {"weights": "sha256:..." | "commit:...", "adapter": ...}
    device: str | None                 # resolved on the driver, never "auto" (None: see above)
    precision: str | None
    versions: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    # --previous: what its rows were matched against ({"location", "fingerprint"}, see
    # read/previous.py); finalize refuses an old file that no longer has this fingerprint
    previous_pin: Mapping[str, str] | None = None
    export_truncate_dim: int | None = None   # format 2's --truncate-dim (the exports only)
    # how the precision was chosen (encode/calibrate.py Choice: the rates it was timed at)
    precision_choice: Mapping[str, Any] | None = None

    @classmethod
    def new(cls, cfg: JobConfig, model: ModelInfo, identity: Mapping[str, str], device: str,
            precision: str, previous_pin: Mapping[str, str] | None = None,
            precision_choice: Mapping[str, Any] | None = None) -> JobRecord:
        """The record of a run about to encode (its config validated, device and precision
        resolved): credentials redacted, this machine's package versions, the time now."""
        redacted = redact_config(cfg.to_dict())
        return cls(_dataclass_of(OutputSpec, redacted["spec"]),
                   _dataclass_of(RunOptions, redacted["options"]), cfg.config_hash(), model,
                   dict(identity), device, precision, package_versions(), now_iso(),
                   dict(previous_pin) if previous_pin else None, None,
                   dict(precision_choice) if precision_choice else None)

    # ---- job.json ---------------------------------------------------------------------------

    def to_json(self) -> str:
        data = {"format": FORMAT,
                "config": {"spec": dataclasses.asdict(self.spec),
                           "options": dataclasses.asdict(self.options)},
                "config_hash": self.config_hash,
                "model": {**self.model.to_dict(), "identity": dict(self.identity)},
                "device": self.device, "precision": self.precision,
                "versions": dict(self.versions), "created": self.created,
                "previous_pin": dict(self.previous_pin) if self.previous_pin else None}
        if self.export_truncate_dim:
            data["export_truncate_dim"] = self.export_truncate_dim
        if self.precision_choice:
            data["precision_choice"] = dict(self.precision_choice)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> JobRecord:
        """A record as job.json holds it, in this format or an older one; a job.json that
        does not read as one is a one-line DataError naming `where`."""
        try:
            data = json.loads(text)
            version = data.get("format", 1)
            if not isinstance(version, int) or version > FORMAT:
                raise DataError(f"{where}/job.json is of format {version!r}, newer than this "
                                f"ray-embed reads ({FORMAT}): use a newer ray-embed")
            resolved = (data.get("device"), data.get("precision")) if version == 1 else \
                (data["device"], data["precision"])
            model = dict(data["model"])
            identity = model.pop("identity")
            options = dict(data["config"]["options"])
            export_cut = options.pop("truncate_dim", None) if version < 3 else None
            return cls(_dataclass_of(OutputSpec, data["config"]["spec"]),
                       _dataclass_of(RunOptions, options),
                       data["config_hash"], _dataclass_of(ModelInfo, model), identity,
                       *resolved, data.get("versions", {}), data.get("created", ""),
                       data.get("previous_pin"),
                       export_cut or data.get("export_truncate_dim"),
                       data.get("precision_choice"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{where}/job.json is not a job record this ray-embed reads "
                            f"({type(exc).__name__}: {exc})") from None

    # ---- what the rest of the job needs of it -----------------------------------------------

    @property
    def revision(self) -> str | None:
        """The Hub commit every tokenizer and replica loads (None: a local model folder)."""
        return pinned_revision(self.identity)

    def compat_attrs(self) -> dict[str, Any]:
        """What an earlier embeddings.h5 must share with this run for its vectors to be reused
        (--previous compares them); the very values `h5_attributes` writes."""
        return {name: value_of(self) for name, value_of in COMPAT.items()}

    def h5_attributes(self) -> dict[str, Any]:
        """The attributes of the run's embeddings.h5 (the merge adds count, dim and what ran);
        an attribute of a later release than the first is left out at its default (`prompt`:
        none), so a file made before it reads the same."""
        compat = self.compat_attrs()
        attrs = {"model": compat["model"], "adapter": compat["adapter"], **compat,
                 "config_hash": self.config_hash, "versions": dict(self.versions),
                 "url_template": self.options.url_template or ""}
        if self.model.query_prompt:
            attrs["query_prompt"] = self.model.query_prompt
        return {k: v for k, v in attrs.items() if COMPAT_DEFAULTS.get(k, object()) != v}

    def replica(self) -> ReplicaSpec:
        """What every replica of this run needs, as plain data."""
        return ReplicaSpec.of(self.spec, self.options, self.model.source, self.revision,
                              self.device, self.precision, self.model)

    def query_replica(self, text: str | None = None, name: str | None = None) -> ReplicaSpec:
        """A replica embedding queries for this run (`search`): the query side of the model,
        with `text` or the model's prompt `name` before the query, else the run's query
        prompt (job.json's model.query_prompt)."""
        if text is None and name is None:
            text, name = self.model.query_prompt, self.model.query_prompt_name
        return dataclasses.replace(self.replica(), side="query", prompt=text, prompt_name=name)

    def facts(self) -> dict[str, Any]:
        """What `status` and the dataset card show of the run, by name."""
        return {"model": self.model.name, "adapter": self.spec.adapter or "none",
                "text template": self.spec.text,
                "document prompt": _shown_prompt(self.model.prompt, self.model.prompt_name),
                "query prompt": _shown_prompt(self.model.query_prompt,
                                              self.model.query_prompt_name),
                "pooling": self.model.pooling,
                "normalized": self.model.normalized, "dim": self.model.dim,
                "max tokens": self.model.max_seq_length, "device": self.device,
                "precision": self.precision, "config hash": self.config_hash,
                "limit": self.options.limit}

    def check_carried_on_by(self, cfg: JobConfig, identity: Mapping[str, str],
                            where: str, model: ModelInfo | None = None) -> None:
        """Refuse (one line) to resume this run as `cfg`'s with another output spec (config
        hash), another model (identity) or a model that now calls for other vectors (`model`,
        as described now: its prompt, pooling, dimension, ...); nothing has been written when
        it refuses."""
        if self.config_hash != cfg.config_hash():
            new = _dataclass_of(OutputSpec, redact_config(cfg.to_dict())["spec"])
            raise UserError(_other_settings(where, self.spec, new))
        check_same_model(self.identity, identity, where)
        if model is not None:
            check_same_calling(self.model, model, where)


# The model facts that decide its vectors, beyond its weights: a run carried on must find them
# as it started (a model folder's prompts or pooling edited in place, say)
CALLING = ("backend", "max_seq_length", "sep_token", "dim", "pooling", "normalized", "prompt",
           "prompt_skip", "lowercase")


def check_same_calling(old: ModelInfo, new: ModelInfo, where: str) -> None:
    differ = [f"{k}: {getattr(old, k)!r} -> {getattr(new, k)!r}" for k in CALLING
              if getattr(old, k) != getattr(new, k)]
    if differ:
        raise UserError(f"the model of {where} now calls for other vectors than it started with "
                        f"({'; '.join(differ)}); use --fresh to start over, or a new --output")


def _shown_prompt(text: str | None, name: str | None) -> str:
    if text is None:
        return "not recorded (the model's own)"
    if not text:
        return "none"
    return f"{text!r} ({name})" if name else repr(text)


# What an earlier embeddings.h5 must share with a run for its vectors to be reused (--previous):
# attribute name -> its value in a run's record
COMPAT = {
    "model": lambda r: r.model.name,
    "model_identity": lambda r: json.dumps(dict(r.identity), sort_keys=True),
    "adapter": lambda r: r.spec.adapter or "",
    "backend": lambda r: r.model.backend,
    "pooling": lambda r: r.model.pooling,
    "normalized": lambda r: bool(r.model.normalized),
    "precision": lambda r: r.precision,
    "text_template": lambda r: r.spec.text,
    "max_seq_length": lambda r: r.model.max_seq_length,
    "dim": lambda r: r.model.dim,
    "prompt": lambda r: r.model.prompt,
}
COMPAT_ATTRS = tuple(COMPAT)
# the value of a compat attribute a file made before it has not got (read as this)
COMPAT_DEFAULTS = {"prompt": ""}


def _dataclass_of(cls, data: Mapping[str, Any]):
    """`cls` from a dict of its fields (missing ones: their defaults); no validation (what a
    record holds was validated when it was made). A field it does not have is a ValueError."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {', '.join(unknown)}")
    return cls(**{k: tuple(v) if k in TUPLE_FIELDS and isinstance(v, list) else v
                  for k, v in data.items()})


def _other_settings(where: str, old: OutputSpec, new: OutputSpec) -> str:
    before, after = dataclasses.asdict(old), dataclasses.asdict(new)
    diff = [f"{k}: {_plain(before[k])!r} -> {_plain(after[k])!r}" for k in after
            if before[k] != after[k]]
    what = "; ".join(diff) or "settings differ"
    return (f"{where} holds a run with other settings ({what}); use another --output, "
            f"or --fresh to discard it")


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
