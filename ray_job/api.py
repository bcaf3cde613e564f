"""`ray_job.embed(...)`: the run `ray-embed run` makes, from Python, with the same settings.

Settings are the config's keys (the flags' names with `_`: `inputs`, `output`, `model`,
`limit`, `precision`, `preset`, ...), given as keywords, as a JobConfig, as a dict or as a
job.yaml path; they are checked as the CLI checks them (one-line `ConfigError`s). `ray-embed
run` is this run (`run_job`) plus printing.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import JobConfig, build_config
from .errors import ConfigError, DataError
from .results.finished import FinishedRun, open_run

ConfigLike = JobConfig | Mapping[str, Any] | str | Path | None


def embed(config: ConfigLike = None, /, **settings: Any) -> FinishedRun:
    """Run the job and return the finished run (`open_run` of its output, with the run's
    report as `.report`). `config`: a JobConfig, a dict of settings or a job.yaml path, which
    `settings` override (a setting of None is left unset, as an absent flag). With
    `strict=True`, rejected rows raise a DataError once the run is finished."""
    cfg = job_config(config, **settings)
    report = run_job(cfg)
    if cfg.options.strict and report["rows_rejected"]:
        raise DataError(f"strict: {rejected_rows(report)} (the run is finished in "
                        f"{report['output'].rsplit('/', 1)[0]})")
    return open_run(cfg.options.output).with_report(report)


def run_job(cfg: JobConfig) -> dict:
    """The whole run (read, tokenize, encode, write, finalize, publish); its report."""
    from .pipeline import run

    return run(cfg)


def rejected_rows(report: dict) -> str:
    """`N rows rejected: n1 reason1, n2 reason2` of a run's report."""
    reasons = ", ".join(f"{n} {r}" for r, n in report["rejected_by_reason"].items())
    return f"{report['rows_rejected']} rows rejected: {reasons}"


def job_config(config: ConfigLike = None, /, **settings: Any) -> JobConfig:
    """The validated JobConfig of `config` (JobConfig, dict or job.yaml path) with
    `settings` over it, a preset's settings under both, as `ray-embed run` builds it."""
    settings = {key: _plain(value) for key, value in settings.items()}
    if config is None or isinstance(config, (str, os.PathLike)):
        return build_config(os.fspath(config) if config is not None else None, settings)
    if isinstance(config, JobConfig):
        return build_config(None, settings, defaults=config.flat())
    if isinstance(config, Mapping):
        return build_config(None, {**{k: _plain(v) for k, v in config.items()}, **settings})
    raise ConfigError(f"config must be a JobConfig, a dict of settings or a job.yaml path; "
                      f"got {type(config).__name__}")


def _plain(value: Any) -> Any:
    """Paths as the strings a YAML file or a flag would give."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return type(value)(os.fspath(v) if isinstance(v, os.PathLike) else v for v in value)
    return value
