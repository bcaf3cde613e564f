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

Format 2 (this one) says `"format": 2`. Format 1, release 0.1.0's, has the same fields and no
`format`; it wrote device and precision in a second write, so a run that stopped before its
first shard has none: they load as None.
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import platform
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..config import TUPLE_FIELDS, JobConfig, OutputSpec, RunOptions
from ..errors import DataError, UserError
from ..redact import redact_config
from .replica import ReplicaSpec

FORMAT = 2
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

    @classmethod
    def new(cls, cfg: JobConfig, model: ModelInfo, identity: Mapping[str, str], device: str,
            precision: str, previous_pin: Mapping[str, str] | None = None) -> "JobRecord":
        """The record of a run about to encode (its config validated, device and precision
        resolved): credentials redacted, this machine's package versions, the time now."""
        redacted = redact_config(cfg.to_dict())
        return cls(_dataclass_of(OutputSpec, redacted["spec"]),
                   _dataclass_of(RunOptions, redacted["options"]), cfg.config_hash(), model,
                   dict(identity), device, precision, package_versions(), now_iso(),
                   dict(previous_pin) if previous_pin else None)

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
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> "JobRecord":
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
            return cls(_dataclass_of(OutputSpec, data["config"]["spec"]),
                       _dataclass_of(RunOptions, data["config"]["options"]),
                       data["config_hash"], _dataclass_of(ModelInfo, model), identity,
                       *resolved, data.get("versions", {}), data.get("created", ""),
                       data.get("previous_pin"))
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
        """The attributes of the run's embeddings.h5 (the merge adds count, dim and what ran)."""
        compat = self.compat_attrs()
        return {"model": compat["model"], "adapter": compat["adapter"], **compat,
                "config_hash": self.config_hash, "versions": dict(self.versions),
                "url_template": self.options.url_template or ""}

    def replica(self) -> ReplicaSpec:
        """What every replica of this run needs, as plain data."""
        return ReplicaSpec.of(self.spec, self.options, self.model.source, self.revision,
                              self.device, self.precision)

    def facts(self) -> dict[str, Any]:
        """What `status` and the dataset card show of the run, by name."""
        return {"model": self.model.name, "adapter": self.spec.adapter or "none",
                "text template": self.spec.text, "pooling": self.model.pooling,
                "normalized": self.model.normalized, "dim": self.model.dim,
                "max tokens": self.model.max_seq_length, "device": self.device,
                "precision": self.precision, "config hash": self.config_hash,
                "limit": self.options.limit}

    def check_carried_on_by(self, cfg: JobConfig, identity: Mapping[str, str],
                            where: str) -> None:
        """Refuse (one line) to resume this run as `cfg`'s with another output spec (config
        hash) or another model (identity); nothing has been written when it refuses."""
        if self.config_hash != cfg.config_hash():
            new = _dataclass_of(OutputSpec, redact_config(cfg.to_dict())["spec"])
            raise UserError(_other_settings(where, self.spec, new))
        check_same_model(self.identity, identity, where)


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
}
COMPAT_ATTRS = tuple(COMPAT)


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
