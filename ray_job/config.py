"""The job config: one validated, frozen object built from a YAML file and CLI overrides.

It has two parts:

* `OutputSpec`: what defines the embeddings (inputs, model, template, ...). It is hashed; a run
  directory made with another spec is refused, and `--previous` compares it.
* `RunOptions`: how to run it (where to write, resources, batching, exports, publishing).

Both parts are made from the settings' declarations (settings/declared.py: type, default,
allowed values, flag, help). Settings are flat in YAML files and flags (`model`, `limit`, ...);
`JobConfig.of(**flat)` and `JobConfig.from_dict(flat)` sort them into the two parts. Both
parts are plain data (`to_dict` / `from_dict`), so what a Ray task needs travels as a dict.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any

import yaml

from .config_checks import PROMPT_PAIRS, check_types, validate
from .errors import ConfigError
from .redact import redact_url
from .settings import OPTION_SETTINGS, PRESETS, SPEC_SETTINGS

URL_PRESETS = {"arxiv": "https://arxiv.org/pdf/{id}.pdf"}
# OutputSpec fields of later releases than the first: hashed when set (`config_hash`)
HASHED_WHEN_SET = tuple(s.name for s in SPEC_SETTINGS if s.hashed == "when_set")
NOT_HASHED = tuple(s.name for s in SPEC_SETTINGS if s.hashed == "never")
SPEC_FIELDS = tuple(s.name for s in SPEC_SETTINGS)
OPTION_FIELDS = tuple(s.name for s in OPTION_SETTINGS)
TUPLE_FIELDS = tuple(s.name for s in SPEC_SETTINGS + OPTION_SETTINGS if s.repeatable)


class _OutputSpecMethods:
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


class _RunOptionsMethods:
    @property
    def resolved_url_template(self) -> str | None:
        return URL_PRESETS.get(self.url_template, self.url_template)


def _settings_dataclass(name: str, settings, methods: type, doc: str) -> type:
    """A frozen dataclass with one field per setting: its declared type and default."""
    cls = make_dataclass(name, [(s.name, s.type, field(default=s.default)) for s in settings],
                         bases=(methods,), frozen=True, namespace={"__module__": __name__})
    cls.__doc__ = doc
    return cls


OutputSpec = _settings_dataclass(
    "OutputSpec", SPEC_SETTINGS, _OutputSpecMethods,
    "What the embeddings are: a run directory made with another spec is refused.")
RunOptions = _settings_dataclass(
    "RunOptions", OPTION_SETTINGS, _RunOptionsMethods,
    "How to run the job: none of these change what the embeddings are.")


@dataclass(frozen=True)
class JobConfig:
    spec: OutputSpec = OutputSpec()
    options: RunOptions = RunOptions()

    def __post_init__(self) -> None:
        validate(self.spec, self.options)

    @classmethod
    def of(cls, **settings: Any) -> JobConfig:
        """From flat settings (`model=..., limit=...`), as in YAML files and flags."""
        return cls.from_dict(settings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobConfig:
        """Flat settings, or the nested form `to_dict` writes ({"spec": ..., "options": ...})."""
        if set(data) <= {"spec", "options"} and data:
            data = {**data.get("spec", {}), **data.get("options", {})}
        unknown = sorted(set(data) - set(SPEC_FIELDS) - set(OPTION_FIELDS))
        if unknown:
            known = ", ".join(sorted(SPEC_FIELDS + OPTION_FIELDS))
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)} (known: {known})")
        values = {k: _as_str_tuple(k, v) if k in TUPLE_FIELDS else v for k, v in data.items()}
        check_types(values)
        spec = OutputSpec(**{k: v for k, v in values.items() if k in SPEC_FIELDS})
        options = RunOptions(**{k: v for k, v in values.items() if k in OPTION_FIELDS})
        return cls(spec, options)

    def to_dict(self) -> dict[str, Any]:
        return {"spec": dataclasses.asdict(self.spec), "options": dataclasses.asdict(self.options)}

    def flat(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self.spec), **dataclasses.asdict(self.options)}

    def replace(self, **settings: Any) -> JobConfig:
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
